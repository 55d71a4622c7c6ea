using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
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
try
{
    builder.AddWzpSilo();
}
catch (Exception e) when (e is Microsoft.Extensions.Options.OptionsValidationException or InvalidOperationException)
{
    // Unusable settings (the scale-out mode without its TLS certificate, for one): say what to do, no stack trace.
    Console.Error.WriteLine($"Wzp.Silo: {e.Message}");
    return 2;
}
if (hostsGateway)
    builder.Services.AddWzpGateway(builder.Configuration, allInOne: true);
// The room administration API on Admin:ListenAddress (default 127.0.0.1:9470), after the silo it calls.
builder.AddWzpAdminApi();
// A silo started before Redis is reachable waits for it (and says so) instead of failing inside Orleans' start.
if (!await RedisWait.BeforeStartAsync(builder.Configuration, "Wzp.Silo")) return 130;

await builder.Build().RunAsync();
return 0;

// Internal, as without ASP.NET Core: its source generator would otherwise make the entry point's class public, and
// every project referencing this one (the benchmarks, the CLI) would see a second 'Program'.
internal partial class Program;
