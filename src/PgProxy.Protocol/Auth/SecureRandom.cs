using System.Security.Cryptography;

namespace PgProxy.Protocol.Auth;

/// <summary>
/// Cryptographically random bytes handed out from a per-thread block that is refilled from the OS generator
/// (<see cref="RandomNumberGenerator"/>) once per 512 bytes. A login needs 8 to 30 random bytes (cancel key,
/// SCRAM nonce, MD5 salt); asking OpenSSL for each piece cost two calls into libcrypto and a getpid per login,
/// about 4% of a trust login's CPU. Bytes are handed out once and the block is cleared as it is used, so a
/// value is never repeated and none lingers after use.
/// </summary>
public static class SecureRandom
{
    private const int BlockSize = 512;

    [ThreadStatic] private static byte[]? t_block;
    [ThreadStatic] private static int t_left;

    /// <summary>Fills <paramref name="destination"/> with random bytes.</summary>
    public static void Fill(Span<byte> destination)
    {
        if (destination.Length > BlockSize / 4)
        {
            RandomNumberGenerator.Fill(destination);
            return;
        }

        byte[] block = t_block ??= new byte[BlockSize];
        if (t_left < destination.Length)
        {
            RandomNumberGenerator.Fill(block);
            t_left = BlockSize;
        }

        Span<byte> take = block.AsSpan(BlockSize - t_left, destination.Length);
        take.CopyTo(destination);
        take.Clear();
        t_left -= destination.Length;
    }

    /// <summary>A random int in [<paramref name="minInclusive"/>, int.MaxValue), unbiased (rejection sampling).</summary>
    public static int NextPositive(int minInclusive = 0)
    {
        Span<byte> four = stackalloc byte[4];
        while (true)
        {
            Fill(four);
            int value = BitConverter.ToInt32(four) & int.MaxValue;
            if (value >= minInclusive && value != int.MaxValue)
            {
                return value;
            }
        }
    }

    /// <summary>A random int over its whole range.</summary>
    public static int NextInt32()
    {
        Span<byte> four = stackalloc byte[4];
        Fill(four);
        return BitConverter.ToInt32(four);
    }

    /// <summary><paramref name="count"/> random bytes in a new array.</summary>
    public static byte[] GetBytes(int count)
    {
        byte[] bytes = new byte[count];
        Fill(bytes);
        return bytes;
    }
}
