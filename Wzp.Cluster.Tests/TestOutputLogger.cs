using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Wzp.Cluster.Tests;

/// <summary>Writes log lines to a test's output, with the time since the test started, for diagnosing failures.</summary>
public sealed class TestOutputLoggerProvider(ITestOutputHelper output) : ILoggerProvider
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

    private void Write(string line)
    {
        try
        {
            output.WriteLine($"{_clock.Elapsed.TotalSeconds,8:F3} {line}");
        }
        catch (InvalidOperationException)
        {
            // The test has finished; its output is closed.
        }
    }

    public static ILoggerFactory Factory(ITestOutputHelper output) =>
        LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Debug).AddProvider(new TestOutputLoggerProvider(output)));

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    public void Dispose()
    {
    }

    private sealed class Logger(TestOutputLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            provider.Write($"{logLevel,-11} {category}: {formatter(state, exception)}{(exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message})")}");
        }
    }
}
