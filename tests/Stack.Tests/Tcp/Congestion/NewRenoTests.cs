using TunStack.Tcp.Congestion;

namespace TunStack.Tests.Tcp.Congestion;

/// <summary>NewReno's window arithmetic (RFC 5681 §3.1, equation 4), driven directly.</summary>
public class NewRenoTests
{
    private const int Mss = 1460;

    private static NewReno Create(long cwnd = 10 * Mss) => new(Mss, cwnd);

    [Fact]
    public void Slow_start_grows_by_the_bytes_acknowledged()
    {
        var cc = Create();
        Assert.True(cc.InSlowStart);
        Assert.Equal(CongestionControl.MaxWindow, cc.Ssthresh); // RFC 5681 §3.1: initially arbitrarily high
        cc.OnAck(Mss, 0, 100_000);
        Assert.Equal(11 * Mss, cc.Cwnd);
        cc.OnAck(10 * Mss, 0, 100_000); // one ACK covering ten segments counts them all (byte counting)
        Assert.Equal(21 * Mss, cc.Cwnd);
        cc.OnAck(0, 0, 100_000);
        Assert.Equal(21 * Mss, cc.Cwnd);
    }

    [Fact]
    public void Slow_start_stops_at_ssthresh_and_the_rest_counts_towards_congestion_avoidance()
    {
        var cc = Create(2 * Mss);
        cc.OnCongestionEvent(0, 12 * Mss);           // ssthresh = 6 segments
        Assert.Equal(6 * Mss, cc.Ssthresh);
        Assert.Equal(2 * Mss, cc.Cwnd);               // the event itself leaves cwnd to the recovery (PRR)

        cc.OnAck(7 * Mss, 0, 100_000);                // 4 segments of slow start reach ssthresh, 3 are left over
        Assert.Equal(6 * Mss, cc.Cwnd);
        Assert.False(cc.InSlowStart);
        cc.OnAck(2 * Mss, 0, 100_000);                // 5 of 6 segments of a window counted
        Assert.Equal(6 * Mss, cc.Cwnd);
        cc.OnAck(Mss, 0, 100_000);                    // the sixth: one more segment
        Assert.Equal(7 * Mss, cc.Cwnd);
    }

    /// <summary>RFC 5681 §3.1: in congestion avoidance cwnd grows by one SMSS once a cwnd's worth of bytes is acknowledged.</summary>
    [Fact]
    public void Congestion_avoidance_adds_one_segment_per_window_of_acknowledged_bytes()
    {
        var cc = Create();
        cc.OnCongestionEvent(0, 20 * Mss);
        Assert.Equal(10 * Mss, cc.Ssthresh);
        for (int i = 0; i < 9; i++) cc.OnAck(Mss, 0, 100_000);
        Assert.Equal(10 * Mss, cc.Cwnd);
        cc.OnAck(Mss, 0, 100_000);
        Assert.Equal(11 * Mss, cc.Cwnd);
        for (int i = 0; i < 10; i++) cc.OnAck(Mss, 0, 100_000);
        Assert.Equal(11 * Mss, cc.Cwnd);              // the next step needs 11 segments
        cc.OnAck(Mss, 0, 100_000);
        Assert.Equal(12 * Mss, cc.Cwnd);
    }

    /// <summary>RFC 5681 §3.1 equation (4): ssthresh = max(FlightSize / 2, 2·SMSS).</summary>
    [Theory]
    [InlineData(100_000, 50_000)]
    [InlineData(10 * Mss, 5 * Mss)]
    [InlineData(3000, 2 * Mss)]
    [InlineData(0, 2 * Mss)]
    public void Ssthresh_is_half_the_flight_size_but_at_least_two_segments(long flight, long ssthresh)
    {
        var cc = Create();
        cc.OnCongestionEvent(0, flight);
        Assert.Equal(ssthresh, cc.Ssthresh);
        cc.OnRecoveryEnd();
        Assert.Equal(ssthresh, cc.Cwnd);
    }

    [Fact]
    public void Retransmission_timeout_leaves_one_segment()
    {
        var cc = Create(40 * Mss);
        cc.OnRetransmitTimeout(0, 30 * Mss);
        Assert.Equal(Mss, cc.Cwnd);                  // the loss window (RFC 5681 §3.1)
        Assert.Equal(15 * Mss, cc.Ssthresh);
        cc.OnAck(Mss, 0, 100_000);
        Assert.Equal(2 * Mss, cc.Cwnd);              // slow start again
    }

    [Fact]
    public void Huge_windows_with_a_65495_byte_mss_do_not_overflow()
    {
        const int mss = 65495;
        var cc = new NewReno(mss, 10L * mss);
        for (int i = 0; i < 10; i++) cc.OnAck(1L << 30, 0, 100_000);
        Assert.Equal(CongestionControl.MaxWindow, cc.Cwnd);
        cc.OnCongestionEvent(0, CongestionControl.MaxWindow);
        Assert.Equal(CongestionControl.MaxWindow / 2, cc.Ssthresh);
        cc.OnRecoveryEnd();
        long previous = cc.Cwnd;
        for (int i = 0; i < 100_000; i++)
        {
            cc.OnAck(1L << 30, 0, 100_000);
            Assert.InRange(cc.Cwnd, previous, CongestionControl.MaxWindow);
            previous = cc.Cwnd;
        }
        Assert.Equal(CongestionControl.MaxWindow, cc.Cwnd);
    }
}
