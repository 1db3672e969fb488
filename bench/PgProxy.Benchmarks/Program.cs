using BenchmarkDotNet.Running;

// Hot-path micro-benchmarks with [MemoryDiagnoser]: the relay's goal is 0 bytes allocated per relayed message.
//   dotnet run -c Release --project bench/PgProxy.Benchmarks -- --filter '*'
//   dotnet run -c Release --project bench/PgProxy.Benchmarks -- --filter '*Relay*' --job short
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);

/// <summary>Entry point holder.</summary>
public partial class Program;
