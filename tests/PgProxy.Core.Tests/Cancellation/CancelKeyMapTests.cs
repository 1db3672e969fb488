using PgProxy.Core.Cancellation;

namespace PgProxy.Core.Tests.Cancellation;

public sealed class CancelKeyMapTests
{
    private sealed class Target : ICancelTarget
    {
        public ValueTask CancelAsync(CancellationToken ct) => ValueTask.CompletedTask;
    }

    [Fact]
    public void Keys_SurviveGrowthAndChurn_AndOnlyTheRightSecretFindsItsTarget()
    {
        var map = new CancelKeyMap();
        var live = new Dictionary<int, (int Secret, Target Target)>();
        var order = new List<int>();
        var random = new Random(7);
        // Grow well past the first table, and churn: every third key leaves again (tombstones, rebuilds).
        for (int round = 0; round < 20_000; round++)
        {
            var target = new Target();
            (int pid, int secret) = map.Register(target);
            Assert.True(pid > 0);
            Assert.False(live.ContainsKey(pid), "a key issued twice");
            live.Add(pid, (secret, target));
            order.Add(pid);
            if (round % 3 == 0)
            {
                int at = random.Next(order.Count);
                int gone = order[at];
                order[at] = order[^1];
                order.RemoveAt(order.Count - 1);
                map.Unregister(gone);
                live.Remove(gone);
                Assert.Null(map.Find(gone, 0));
            }
        }

        Assert.Equal(live.Count, map.Count);
        foreach ((int pid, (int secret, Target target)) in live)
        {
            Assert.Same(target, map.Find(pid, secret));
            Assert.Null(map.Find(pid, secret ^ 1));
        }

        Assert.Equal(live.Count, map.Targets.Count());
        Assert.Equal(live.Values.Select(v => v.Target).ToHashSet(), map.Targets.Cast<Target>().ToHashSet());
    }

    [Fact]
    public void PeerKeys_CarryThePeerId_AndUnregisteringEveryKeyLeavesNone()
    {
        var map = new CancelKeyMap();
        var pids = new List<int>();
        for (int i = 0; i < 5000; i++)
        {
            (int pid, _) = map.Register(new Target(), peerId: 9);
            Assert.Equal(9, CancelKeyMap.PeerOf(pid));
            pids.Add(pid);
        }

        foreach (int pid in pids)
        {
            map.Unregister(pid);
        }

        Assert.Equal(0, map.Count);
        Assert.Empty(map.Targets);
        (int again, int secret) = map.Register(new Target(), peerId: 9);
        Assert.NotNull(map.Find(again, secret));
    }
}
