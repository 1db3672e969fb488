namespace PgProxy.Testing;

/// <summary>Finds the repository root and the shared/ folder beside it.</summary>
public static class RepoPaths
{
    /// <summary>The checkout root (the folder holding Proxy.sln).</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>../shared beside the checkout (CI puts it there).</summary>
    public static string Shared => Path.GetFullPath(Path.Combine(Root, "..", "shared"));

    private static string FindRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null)
        {
            if (File.Exists(Path.Combine(dir, "Proxy.sln")))
            {
                return dir;
            }

            dir = Path.GetDirectoryName(dir);
        }

        throw new InvalidOperationException("Proxy.sln not found above " + AppContext.BaseDirectory);
    }
}
