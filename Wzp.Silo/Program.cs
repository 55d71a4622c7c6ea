using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wzp.Gateway;
using Wzp.Silo;

// Configuration: appsettings.json (beside the executable, else the repository root), then environment
// variables (e.g. Orleans__Clustering__Mode=Redis), then the command line.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
{
    Args = args,
    ContentRootPath = ContentRoot.Find(),
});
// All-in-one by default: this silo also terminates clients. Scale-out silos set Gateway:HostInSilo=false.
var hostsGateway = builder.Configuration.GetValue("Gateway:HostInSilo", true);
// Metrics and /healthz on Telemetry:PrometheusEndpoint (default http://127.0.0.1:9464/); added first so that
// /healthz answers (unhealthy) while the silo is still joining the cluster.
builder.AddWzpSiloTelemetry(hostsGateway);
builder.AddWzpSilo();
if (hostsGateway)
    builder.Services.AddWzpGateway(builder.Configuration, allInOne: true);
// A silo started before Redis is reachable waits for it (and says so) instead of failing inside Orleans' start.
using (var loggers = LoggerFactory.Create(logging => logging.AddConsole()))
{
    using var interrupted = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; interrupted.Cancel(); };
    try
    {
        await RedisWait.UntilReachableAsync(builder.Configuration, loggers.CreateLogger("Wzp.Silo"), interrupted.Token);
    }
    catch (OperationCanceledException)
    {
        return 130;
    }
}

await builder.Build().RunAsync();
return 0;
