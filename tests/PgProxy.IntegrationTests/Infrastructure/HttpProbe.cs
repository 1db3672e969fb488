using System.Net;

namespace PgProxy.IntegrationTests.Infrastructure;

/// <summary>The tests' HTTP client for the ops port, and a GET that tells "not answering (yet, or any more)" from an HTTP status.</summary>
public static class HttpProbe
{
    /// <summary>One client for every request to an ops port (each bounded by 20 s).</summary>
    public static HttpClient Client { get; } = new() { Timeout = TimeSpan.FromSeconds(20) };

    /// <summary>The status <paramref name="url"/> answers with, or null when nothing answers there.</summary>
    public static async Task<HttpStatusCode?> StatusAsync(string url, CancellationToken ct)
    {
        try
        {
            using HttpResponseMessage response = await Client.GetAsync(url, ct);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }
}
