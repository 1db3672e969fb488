using System.Globalization;
using PgProxy.Core.Configuration;
using YamlDotNet.RepresentationModel;

namespace PgProxy.IntegrationTests;

/// <summary>
/// deploy/kubernetes: every manifest parses, and what can drift between the files and PgProxy's config does not: the
/// ConfigMap's proxy.toml passes pgproxy check (with the Secret's userlist where the auth file points), the container
/// ports are the config's listen ports, the probes are /readyz and /healthz on the ops port, the config and secret
/// mounts are where the arguments and the auth file look, the grace period covers shutdown_delay + shutdown_timeout,
/// the Service and the ServiceMonitor select the pods and name existing ports, and one image is used throughout.
/// </summary>
public sealed class ManifestTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pgproxy-manifests").FullName;

    public static TheoryData<string> Files => [.. Directory.GetFiles(Path.Combine(RepoPaths.Root, "deploy", "kubernetes"), "*.yaml").Select(f => Path.GetFileName(f))];

    [Theory]
    [MemberData(nameof(Files))]
    public void Manifests_AgreeWithTheConfigTheyCarry(string file)
    {
        List<YamlMappingNode> docs = Load(file);
        YamlMappingNode configMap = Single(docs, "ConfigMap");
        YamlMappingNode secret = Single(docs, "Secret");
        YamlMappingNode deployment = Single(docs, "Deployment");

        // The config passes pgproxy check, with the Secret's userlist where [auth] file points.
        // Laid out as in the pod: the ConfigMap in config/, the Secret in secrets/ beside it.
        string configDir = Path.Combine(_dir, Path.GetFileNameWithoutExtension(file), "config");
        string secretDir = Path.Combine(_dir, Path.GetFileNameWithoutExtension(file), "secrets");
        Directory.CreateDirectory(configDir);
        Directory.CreateDirectory(secretDir);
        File.WriteAllText(Path.Combine(configDir, "proxy.toml"), Str(Map(configMap, "data"), "proxy.toml"));
        File.WriteAllText(Path.Combine(secretDir, "userlist.txt"), Str(Map(secret, "stringData"), "userlist.txt"));
        ConfigResult check = ConfigLoader.LoadFile(Path.Combine(configDir, "proxy.toml"));
        Assert.True(check.Errors.Count == 0, string.Join("\n", check.Errors));
        ProxyConfig config = check.Config!;

        YamlMappingNode pod = Map(Map(Map(deployment, "spec"), "template"), "spec");
        bool sidecar = pod.Children.ContainsKey("initContainers");
        YamlMappingNode proxy = Seq(pod, sidecar ? "initContainers" : "containers").Cast<YamlMappingNode>().Single(c => Str(c, "name") == "pgproxy");
        if (sidecar)
        {
            Assert.Equal("Always", Str(proxy, "restartPolicy")); // a native sidecar: started first, stopped last
        }

        Assert.Equal("pgproxy:local", Str(proxy, "image"));
        Dictionary<string, int> ports = Seq(proxy, "ports").Cast<YamlMappingNode>()
            .ToDictionary(p => Str(p, "name"), p => int.Parse(Str(p, "containerPort"), CultureInfo.InvariantCulture));
        Assert.Equal(PortOf(Assert.Single(config.Proxy.Listen)), ports["postgres"]);
        Assert.Equal(PortOf(config.Http.Listen), ports["ops"]);
        foreach ((string probe, string path) in new[] { ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz") })
        {
            YamlMappingNode get = Map(Map(proxy, probe), "httpGet");
            Assert.Equal(path, Str(get, "path"));
            Assert.Equal("ops", Str(get, "port"));
        }

        // The config file is where the arguments say, from the ConfigMap; the userlist where the auth file says.
        string[] args = [.. Seq(proxy, "args").Select(a => ((YamlScalarNode)a).Value!)];
        string configPath = args[Array.IndexOf(args, "--config") + 1];
        Dictionary<string, string> mounts = Seq(proxy, "volumeMounts").Cast<YamlMappingNode>().ToDictionary(m => Str(m, "name"), m => Str(m, "mountPath"));
        Dictionary<string, YamlMappingNode> volumes = Seq(pod, "volumes").Cast<YamlMappingNode>().ToDictionary(v => Str(v, "name"));
        string configVolume = volumes.Single(v => v.Value.Children.ContainsKey("configMap")).Key;
        string secretVolume = volumes.Single(v => v.Value.Children.ContainsKey("secret")).Key;
        Assert.Equal(Str(Map(configMap, "metadata"), "name"), Str(Map(volumes[configVolume], "configMap"), "name"));
        Assert.Equal(Str(Map(secret, "metadata"), "name"), Str(Map(volumes[secretVolume], "secret"), "secretName"));
        Assert.Equal(Path.GetDirectoryName(configPath), mounts[configVolume]);
        string authFile = Path.GetRelativePath(configDir, config.Auth.File!);
        Assert.Equal(Path.GetFullPath(Path.Combine(mounts[configVolume], authFile)), Path.Combine(mounts[secretVolume], "userlist.txt"));
        Assert.False(mounts[secretVolume].StartsWith(mounts[configVolume] + "/", StringComparison.Ordinal), "no mount inside the ConfigMap's");

        // Non-root, read-only root filesystem; the grace period covers the whole shutdown.
        YamlMappingNode podSecurity = Map(pod, "securityContext");
        Assert.Equal("true", Str(podSecurity, "runAsNonRoot"));
        Assert.True(int.Parse(Str(podSecurity, "runAsUser"), CultureInfo.InvariantCulture) > 0);
        Assert.Equal("true", Str(Map(proxy, "securityContext"), "readOnlyRootFilesystem"));
        int grace = int.Parse(Str(pod, "terminationGracePeriodSeconds"), CultureInfo.InvariantCulture);
        Assert.True(grace > (config.Proxy.ShutdownDelay + config.Proxy.ShutdownTimeout).TotalSeconds,
            $"terminationGracePeriodSeconds {grace} must cover shutdown_delay + shutdown_timeout");

        YamlMappingNode podLabels = Map(Map(Map(Map(deployment, "spec"), "template"), "metadata"), "labels");
        if (docs.FirstOrDefault(d => Kind(d) == "Service") is { } service)
        {
            Assert.True(Selects(Map(Map(service, "spec"), "selector"), podLabels), "the Service selects the pods");
            foreach (YamlMappingNode port in Seq(Map(service, "spec"), "ports").Cast<YamlMappingNode>())
            {
                Assert.Contains(Str(port, "targetPort"), ports.Keys);
            }

            YamlMappingNode monitor = Single(docs, "ServiceMonitor");
            Assert.True(Selects(Map(Map(Map(monitor, "spec"), "selector"), "matchLabels"), Map(Map(service, "metadata"), "labels")));
            YamlMappingNode endpoint = Seq(Map(monitor, "spec"), "endpoints").Cast<YamlMappingNode>().Single();
            Assert.Equal("/metrics", Str(endpoint, "path"));
            Assert.Contains(Str(endpoint, "port"), Seq(Map(service, "spec"), "ports").Cast<YamlMappingNode>().Select(p => Str(p, "name")));
            Assert.True(Selects(Map(Map(Single(docs, "PodDisruptionBudget"), "spec"), "selector") is var pdb ? Map(pdb, "matchLabels") : null!, podLabels));
            YamlMappingNode hpa = Single(docs, "HorizontalPodAutoscaler");
            Assert.Equal(Str(Map(deployment, "metadata"), "name"), Str(Map(Map(hpa, "spec"), "scaleTargetRef"), "name"));
            // Each replica's share (max_db_connections) times the most replicas is the budget the comment states.
            int maxReplicas = int.Parse(Str(Map(hpa, "spec"), "maxReplicas"), CultureInfo.InvariantCulture);
            Assert.Contains($"{maxReplicas} x {config.Proxy.MaxDbConnections}", File.ReadAllText(Path.Combine(RepoPaths.Root, "deploy", "kubernetes", file)), StringComparison.Ordinal);
        }
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static List<YamlMappingNode> Load(string file)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(RepoPaths.Root, "deploy", "kubernetes", file)))
        {
            stream.Load(reader);
        }

        return [.. stream.Documents.Select(d => (YamlMappingNode)d.RootNode)];
    }

    private static string Kind(YamlMappingNode doc) => Str(doc, "kind");

    private static YamlMappingNode Single(List<YamlMappingNode> docs, string kind) => Assert.Single(docs, d => Kind(d) == kind);

    private static YamlMappingNode Map(YamlMappingNode node, string key) => (YamlMappingNode)node.Children[new YamlScalarNode(key)];

    private static YamlSequenceNode Seq(YamlMappingNode node, string key) => (YamlSequenceNode)node.Children[new YamlScalarNode(key)];

    private static string Str(YamlMappingNode node, string key) => ((YamlScalarNode)node.Children[new YamlScalarNode(key)]).Value!;

    /// <summary>Every label the selector asks for is on <paramref name="labels"/>.</summary>
    private static bool Selects(YamlMappingNode selector, YamlMappingNode labels) =>
        selector.Children.All(kv => labels.Children.TryGetValue(kv.Key, out YamlNode? v) && ((YamlScalarNode)v).Value == ((YamlScalarNode)kv.Value).Value);

    private static int PortOf(string listen) => int.Parse(listen[(listen.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
}
