using System.Globalization;
using System.Net;

namespace PgProxy.Core.Configuration;

/// <summary>Parses "host:port", "[::1]:port" and "*:port" listen addresses.</summary>
public static class ListenAddress
{
    /// <summary>Parses a listen address into an endpoint. "*" and "0.0.0.0" listen on all IPv4 addresses, "localhost" on 127.0.0.1.</summary>
    public static bool TryParse(string text, out IPEndPoint? endpoint)
    {
        endpoint = null;
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535)
        {
            return false;
        }

        string host = text.Substring(0, colon).Trim('[', ']');
        IPAddress? address = host switch
        {
            "*" => IPAddress.Any,
            "localhost" => IPAddress.Loopback,
            _ => IPAddress.TryParse(host, out IPAddress? a) ? a : null,
        };
        if (address is null)
        {
            return false;
        }

        endpoint = new IPEndPoint(address, port);
        return true;
    }
}
