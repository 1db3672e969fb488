# Multi-stage build: SDK to publish (ReadyToRun), ASP.NET runtime to run as a non-root user.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/PgProxy -c Release -o /app -p:PublishReadyToRun=true

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
USER app
EXPOSE 6432
ENTRYPOINT ["dotnet", "/app/pgproxy.dll"]
CMD ["run", "--config", "/etc/pgproxy/proxy.toml"]
