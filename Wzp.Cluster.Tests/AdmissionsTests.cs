using System.Net;
using Wzp.Gateway;

namespace Wzp.Cluster.Tests;

/// <summary>The gateway's table of clients between connection and join (issue 12, defect 4).</summary>
public sealed class AdmissionsTests
{
    [Fact]
    public void AddressesOfOneIpv6Slash64_ShareOneLimit_AndOtherSlash64sDoNot()
    {
        var table = new Admissions(maxTotal: 100, maxPerAddress: 2);
        Assert.NotNull(table.TryEnter(IPAddress.Parse("2001:db8:1:2::1")));
        Assert.NotNull(table.TryEnter(IPAddress.Parse("2001:db8:1:2:ffff:1:2:3")));
        Assert.Null(table.TryEnter(IPAddress.Parse("2001:db8:1:2:aaaa::9")));
        Assert.NotNull(table.TryEnter(IPAddress.Parse("2001:db8:1:3::1")));
        Assert.Equal(3, table.Count);
    }

    [Fact]
    public void AnIpv4Address_CountsTheSame_MappedIntoIpv6_AndApartFromItsNeighbours()
    {
        var table = new Admissions(maxTotal: 100, maxPerAddress: 1);
        Assert.NotNull(table.TryEnter(IPAddress.Parse("192.0.2.7")));
        Assert.Null(table.TryEnter(IPAddress.Parse("::ffff:192.0.2.7")));
        Assert.NotNull(table.TryEnter(IPAddress.Parse("192.0.2.8")));
        // ::/64 holds ::1; it is not the IPv4 address 0.0.0.1.
        Assert.NotNull(table.TryEnter(IPAddress.Parse("0.0.0.1")));
        Assert.NotNull(table.TryEnter(IPAddress.IPv6Loopback));
    }

    [Fact]
    public void FullTable_PushesOutTheOldestClientWithoutHello_ForANewcomer()
    {
        var table = new Admissions(maxTotal: 3, maxPerAddress: 3);
        var first = table.TryEnter(IPAddress.Parse("192.0.2.1"))!;
        var second = table.TryEnter(IPAddress.Parse("192.0.2.2"))!;
        var third = table.TryEnter(IPAddress.Parse("192.0.2.3"))!;
        first.SaidHello(); // past hello: keeps its place

        var newcomer = table.TryEnter(IPAddress.Parse("198.51.100.1"));

        Assert.NotNull(newcomer);
        Assert.False(first.PushedOut.IsCancellationRequested);
        Assert.True(second.PushedOut.IsCancellationRequested);
        Assert.False(third.PushedOut.IsCancellationRequested);
        Assert.Equal(3, table.Count);
        Assert.Equal(1, table.PushedOut);
        // The pushed-out client's own end gives nothing back twice.
        second.Dispose();
        Assert.Equal(3, table.Count);
        Assert.NotNull(table.TryEnter(IPAddress.Parse("192.0.2.2"))); // pushes out the third
        Assert.True(third.PushedOut.IsCancellationRequested);
    }

    [Fact]
    public void FullTableOfClientsPastHello_RefusesNewcomers_UntilOneEnds()
    {
        var table = new Admissions(maxTotal: 2, maxPerAddress: 2);
        var a = table.TryEnter(IPAddress.Parse("192.0.2.1"))!;
        var b = table.TryEnter(IPAddress.Parse("192.0.2.2"))!;
        a.SaidHello();
        b.SaidHello();
        Assert.Null(table.TryEnter(IPAddress.Parse("198.51.100.1")));
        b.Dispose();
        Assert.NotNull(table.TryEnter(IPAddress.Parse("198.51.100.1")));
        a.Dispose();
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void PushedOutClient_FreesItsSourcesCount()
    {
        // A source at its limit whose clients were pushed out may connect again.
        var table = new Admissions(maxTotal: 2, maxPerAddress: 2);
        table.TryEnter(IPAddress.Parse("192.0.2.1"));
        table.TryEnter(IPAddress.Parse("192.0.2.1"));
        Assert.NotNull(table.TryEnter(IPAddress.Parse("198.51.100.1")));
        Assert.NotNull(table.TryEnter(IPAddress.Parse("198.51.100.2")));
        Assert.NotNull(table.TryEnter(IPAddress.Parse("192.0.2.1")));
    }
}
