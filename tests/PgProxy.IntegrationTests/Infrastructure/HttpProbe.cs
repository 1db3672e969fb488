using System.Net;

namespace PgProxy.IntegrationTests.Infrastructure;

/// <summary>A GET of an ops endpoint that tells "not answering (yet, or any more)" from an HTTP status.</summary>
public static class HttpProbe
{
    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(20) };

    /// <summary>The status <paramref name="url"/> answers with, or null when nothing answers there.</summary>
    public static async Task<HttpStatusCode?> StatusAsync(string url, CancellationToken ct)
    {
        try
        {
            using HttpResponseMessage response = await s_http.GetAsync(url, ct);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }
}
