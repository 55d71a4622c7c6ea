using BenchmarkDotNet.Running;
using Wzp.Benchmarks;

// Issue 5's gateway load run is not a BenchmarkDotNet case: it scales to saturation and measures latency at half load.
if (args.Length > 0 && args[0] == GatewayForwardingBenchmark.Switch)
{
    return await GatewayForwardingBenchmark.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == GatewayForwardingBenchmark.MembersSwitch)
{
    return await GatewayForwardingBenchmark.RunMembersAsync();
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
