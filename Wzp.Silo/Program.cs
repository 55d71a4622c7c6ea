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
builder.AddWzpSilo();
// All-in-one by default: this silo also terminates clients. Scale-out silos set Gateway:HostInSilo=false.
if (builder.Configuration.GetValue("Gateway:HostInSilo", true))
    builder.Services.AddWzpGateway(builder.Configuration, allInOne: true);
await builder.Build().RunAsync();
