namespace TunStack.Host.Tests.Integration;

/// <summary>The pieces of the transfer tests that need no kernel: upload content, counter parsing, ss fields.</summary>
public sealed class TransferHelpersTests
{
    [Fact]
    public void Upload_content_is_the_same_however_it_is_cut()
    {
        byte[] whole = new byte[10_000];
        UploadContent.Fill(whole, 0, seed: 5);
        byte[] pieces = new byte[10_000];
        for (int at = 0; at < pieces.Length; at += 1000)
            UploadContent.Fill(pieces.AsSpan(at, Math.Min(1000, pieces.Length - at)), at, seed: 5);
        Assert.Equal(whole, pieces);

        byte[] odd = new byte[13];
        UploadContent.Fill(odd, 8, seed: 5);
        Assert.Equal(whole.AsSpan(8, 13).ToArray(), odd);

        byte[] other = new byte[10_000];
        UploadContent.Fill(other, 0, seed: 6);
        Assert.NotEqual(whole, other);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(64)]
    [InlineData(536)]
    [InlineData(1448)]
    [InlineData(1460)]
    [InlineData(4096)]
    [InlineData(65480)]
    [InlineData(65536)]
    public void Upload_content_does_not_repeat_at_a_segment_size(int shift)
    {
        // A segment delivered twice or in the wrong place must change the stream: no byte run repeats `shift` later.
        byte[] content = new byte[1 << 20];
        UploadContent.Fill(content, 0, seed: 20240501);
        int same = 0;
        for (int i = 0; i + shift < content.Length; i++)
            same += content[i] == content[i + shift] ? 1 : 0;
        double fraction = (double)same / (content.Length - shift);
        Assert.InRange(fraction, 0.0, 0.01); // random bytes agree 1/256 of the time
    }

    [Fact]
    public void Counters_are_parsed_from_netstat_and_snmp()
    {
        const string text = """
            TcpExt: SyncookiesSent TCPTimeouts TCPSackRecovery
            TcpExt: 0 7 12
            IpExt: InNoRoutes InOctets
            IpExt: 0 123456789012
            Tcp: RtoAlgorithm RtoMin MaxConn RetransSegs
            Tcp: 1 200 -1 99

            """;
        var before = KernelTcpView.ParseCounters(text);
        Assert.Equal(7, before["TcpExt.TCPTimeouts"]);
        Assert.Equal(123456789012, before["IpExt.InOctets"]);
        Assert.Equal(-1, before["Tcp.MaxConn"]);

        var after = KernelTcpView.ParseCounters(text.Replace("0 7 12", "0 9 20", StringComparison.Ordinal).Replace("-1 99", "-1 150", StringComparison.Ordinal));
        Assert.Equal(2, KernelTcpView.Delta(before, after, "TcpExt.TCPTimeouts"));
        Assert.Equal("TCPTimeouts 2, TCPSackRecovery 8, RetransSegs 51", KernelTcpView.DescribeDeltas(before, after));

        Assert.Throws<FormatException>(() => KernelTcpView.ParseCounters("TcpExt: A B\nTcpExt: 1\n"));
    }

    [Fact]
    public void Ss_fields_are_found()
    {
        const string ss = """
            State Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess
            ESTAB 0      585790    198.18.0.1:53962   198.18.0.2:80
            	 cubic wscale:7,10 rto:204 bytes_sent:922947 bytes_acked:381176 bytes_received:25 lost:3
            """;
        Assert.Equal(381176, KernelTcpView.Field(ss, "bytes_acked"));
        Assert.Equal(25, KernelTcpView.Field(ss, "bytes_received"));
        Assert.Null(KernelTcpView.Field(ss, "retrans"));
        Assert.Null(KernelTcpView.Field("", "bytes_acked"));
    }
}
