using Wzp.Cli;

return await WzpCommand.RunAsync(args, Console.Out, Console.Error);
