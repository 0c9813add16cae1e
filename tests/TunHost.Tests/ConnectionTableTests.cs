using TunStack.Wire;

namespace TunStack.Host.Tests;

public sealed class ConnectionTableTests
{
    [Fact]
    public void An_empty_stack_has_the_header_and_no_rows()
    {
        string table = ConnectionTable.Render(TunStackDiagnostics.Of(new NetStack(new NetStackOptions()), 0));
        string[] lines = table.Split('\n');
        Assert.Equal("0 live connections, 0 in TIME-WAIT (kept 2·MSL after the close; not listed)", lines[0]);
        Assert.Matches(@"^State\s+Recv-Q\s+Send-Q\s+Local\s+Peer\s+rtt\(ms\)\s+rto\(ms\)\s+cwnd\s+ssthresh\s+inflight\s+retrans\s+mss\s+options$", lines[2]);
        Assert.Equal("", lines[3]);
    }

    [Fact]
    public void A_connection_is_one_aligned_row()
    {
        var stack = new NetStack(new NetStackOptions { Addresses = [IpAddress.Parse("198.18.0.2")], IsnSecret = new byte[16] });
        var tcb = stack.Connect(IpAddress.Parse("198.18.0.1"), 8000, localPort: 40000);
        stack.Poll(0); // the SYN goes out: SYN-SENT, no RTT sample, no congestion window yet
        string[] lines = ConnectionTable.Render(TunStackDiagnostics.Of(stack, 0)).Split('\n');
        Assert.StartsWith("1 live connection, 0 in TIME-WAIT", lines[0]);
        string header = lines[2];
        string row = lines[3];
        // In flight: the SYN, which occupies one sequence number.
        Assert.Matches(@"^SYN-SENT\s+0\s+0\s+198\.18\.0\.2:40000\s+198\.18\.0\.1:8000\s+-\s+1000\s+-\s+-\s+1\s+0\s+1460\s+-$", row);
        // Numbers end under the end of their heading; endpoints start under theirs.
        Assert.Equal(header.IndexOf("Local", StringComparison.Ordinal), row.IndexOf("198.18.0.2:40000", StringComparison.Ordinal));
        Assert.Equal(header.IndexOf("rto(ms)", StringComparison.Ordinal) + "rto(ms)".Length, row.IndexOf("1000", StringComparison.Ordinal) + 4);
        Assert.Equal(TunStack.Tcp.TcpState.SynSent, tcb.State);
    }
}
