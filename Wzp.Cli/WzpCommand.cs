using System.CommandLine;
using System.CommandLine.Invocation;
using Wzp.Client;
using Wzp.Client.Audio;
using Wzp.Protocol;

namespace Wzp.Cli;

/// <summary>
/// The <c>wzp</c> command line. Every failure a user can cause ends with one line on stderr and a non-zero exit
/// code: <see cref="ExitCodes.Usage"/> for arguments that do not parse, <see cref="ExitCodes.Failure"/> for
/// everything else (unreachable gateway, refused key, bad file).
/// </summary>
public static class WzpCommand
{
    /// <summary>Runs the command line with the given writers (the process's console in <c>Program</c>; strings in tests).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        var console = new CliConsole(output, error);
        var root = Build(console);
        var parse = root.Parse(args);
        if (parse.Action is ParseErrorAction && parse.Errors.Count > 0)
        {
            var command = string.Join(' ', parse.CommandResult.Command.Name == root.Name ? ["wzp"] : ["wzp", .. CommandPath(parse.CommandResult)]);
            var reasons = string.Join("; ", parse.Errors.Select(e => e.Message.TrimEnd('.')).Distinct());
            error.WriteLine($"wzp: {reasons} (see '{command} --help')");
            return ExitCodes.Usage;
        }
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration
                {
                    Output = output,
                    Error = error,
                    EnableDefaultExceptionHandler = false,
                    // The relay leaves its rooms and stops the silo on Ctrl+C; give it the time.
                    ProcessTerminationTimeout = TimeSpan.FromSeconds(15),
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Describe(e) is { } reason)
        {
            error.WriteLine($"wzp: {reason}");
            return e is UsageException ? ExitCodes.Usage : ExitCodes.Failure;
        }
        catch (OperationCanceledException)
        {
            error.WriteLine("wzp: interrupted");
            return ExitCodes.Interrupted;
        }
    }

    /// <summary>The one line a user sees for a failure they can cause; null for a bug, which keeps its stack trace.</summary>
    internal static string? Describe(Exception e) => e switch
    {
        UsageException or WzpClientException or SeedFileException or AudioFileException or CliFailureException => e.Message,
        FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or IOException => e.Message,
        _ => null,
    };

    private static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult result)
    {
        var names = new Stack<string>();
        for (System.CommandLine.Parsing.SymbolResult? r = result; r is System.CommandLine.Parsing.CommandResult c && c.Parent is not null; r = r.Parent)
            names.Push(c.Command.Name);
        return names;
    }

    internal static RootCommand Build(CliConsole console)
    {
        var root = new RootCommand(
            "wzp: encrypted voice rooms over QUIC.\n\n" +
            "Start a relay with 'wzp relay', then in two terminals 'wzp join myroom --tone 440 --record heard.wav'.\n" +
            "Keys live in ~/.config/wzp (identity, known_clusters, cluster/).");
        root.Subcommands.Add(KeyCommands.Keygen(console));
        root.Subcommands.Add(KeyCommands.FingerprintCommand(console));
        root.Subcommands.Add(KeyCommands.Cluster(console));
        root.Subcommands.Add(JoinCommand.Create(console));
        root.Subcommands.Add(RelayCommand.Create(console));
        root.Subcommands.Add(GrantCommands.Create(console));
        root.Subcommands.Add(AdminCommand.Create(console));
        return root;
    }
}

/// <summary>Process exit codes of <c>wzp</c>.</summary>
public static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    /// <summary><c>wzp admin</c>: the API refused the credential (401) or the grant does not allow the request (403).</summary>
    public const int Refused = 3;
    /// <summary><c>wzp admin</c>: no such room or member (404).</summary>
    public const int NotFound = 4;
    public const int Interrupted = 130;
}

/// <summary>Arguments that parse but make no sense together; reported like a parse error.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>A failure with a message fit for the user as is.</summary>
public sealed class CliFailureException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Where commands write: the invocation's writers, and whether a live terminal display fits.</summary>
internal sealed class CliConsole(TextWriter output, TextWriter error)
{
    public TextWriter Out { get; } = output;

    public TextWriter Error { get; } = error;

    /// <summary>True when the output is the process's own terminal: Spectre's live display only fits there.</summary>
    public bool IsInteractive => ReferenceEquals(Out, Console.Out) && !Console.IsOutputRedirected && !Console.IsErrorRedirected;
}
