namespace TunStack.Tcp.Congestion;

/// <summary>
/// NewReno's window arithmetic (RFC 5681 §3.1): slow start, then congestion avoidance growing cwnd by one segment
/// per window of acknowledged bytes, and ssthresh = max(FlightSize / 2, 2·SMSS) on loss (equation 4).
/// </summary>
internal sealed class NewReno(int mss, long initialWindow) : CongestionControl(mss, initialWindow)
{
    private long _bytesAcked;

    public override string Name => "newreno";

    protected override void CongestionAvoidance(long ackedBytes, long nowMicros, long rttMicros)
    {
        // RFC 5681 §3.1: "increment cwnd by SMSS bytes once cwnd bytes have been acknowledged" (byte counting).
        _bytesAcked += ackedBytes;
        while (_bytesAcked >= Cwnd)
        {
            _bytesAcked -= Cwnd;
            Cwnd += Mss;
        }
    }

    public override void OnCongestionEvent(long nowMicros, long flightSize)
    {
        Ssthresh = Math.Max(flightSize / 2, 2L * Mss);
        _bytesAcked = 0;
    }
}
