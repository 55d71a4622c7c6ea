using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Wzp.Gateway;

// The scale-out gateway process. Configuration: appsettings.json (beside the executable, else the repository
// root), then environment variables (e.g. Gateway__GatewayId=gateway-2, Orleans__Clustering__Mode=Redis), then
// the command line.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
{
    Args = args,
    ContentRootPath = HostContentRoot.Find(),
});

// Refuse a missing, expired or foreign credential before connecting to anything, with a reason the operator
// can act on, rather than after the cluster connection (which may wait for silos indefinitely).
if (GatewayProcess.CheckCredential(builder.Configuration, TimeProvider.System) is { } refusal)
{
    using var loggers = LoggerFactory.Create(logging => logging.AddConsole());
    GatewayProcess.LogRefusal(loggers.CreateLogger("Wzp.Gateway"), refusal);
    return GatewayProcess.StartupFailureExitCode;
}

try
{
    builder.AddWzpGatewayProcess();
}
catch (Exception e) when (e is Microsoft.Extensions.Options.OptionsValidationException or InvalidOperationException)
{
    using var loggers = LoggerFactory.Create(logging => logging.AddConsole());
    GatewayProcess.LogRefusal(loggers.CreateLogger("Wzp.Gateway"), e.Message);
    return GatewayProcess.StartupFailureExitCode;
}
if (!await RedisWait.BeforeStartAsync(builder.Configuration, "Wzp.Gateway")) return 130;

await builder.Build().RunAsync();
// GatewayHost sets a non-zero exit code when the gateway could not start (e.g. its port is taken).
return Environment.ExitCode;
