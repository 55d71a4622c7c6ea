using Microsoft.Extensions.Hosting;
using Wzp.Silo;

// Configuration: appsettings.json (beside the executable, else the repository root), then environment
// variables (e.g. Orleans__Clustering__Mode=Redis), then the command line.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
{
    Args = args,
    ContentRootPath = ContentRoot.Find(),
});
builder.AddWzpSilo();
await builder.Build().RunAsync();
