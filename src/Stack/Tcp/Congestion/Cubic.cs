namespace TunStack.Tcp.Congestion;

/// <summary>
/// CUBIC (RFC 9438). After a congestion event the window follows W_cubic(t) = C·(t − K)³ + W_max (§4.2): it climbs
/// quickly back towards the window where loss happened, flattens near it, then probes beyond. In the Reno-friendly
/// region (§4.3) it grows at least as fast as an AIMD flow with the same β would. Windows in the formulas are counted
/// in segments and time in seconds, as in the RFC; the connection's cwnd stays in bytes.
/// </summary>
internal sealed class Cubic(int mss, long initialWindow) : CongestionControl(mss, initialWindow)
{
    private const double C = 0.4;    // §5.1
    private const double Beta = 0.7; // §4.6, multiplicative decrease factor
    private static readonly double AlphaReno = 3 * (1 - Beta) / (1 + Beta); // §4.3

    private double _wMax;         // segments
    private double _cwndPrior;    // segments, cwnd before the last reduction
    private double _k;            // seconds
    private double _wEst;         // segments, the Reno-friendly estimate
    private long _epochStart = -1; // microseconds; -1: a new congestion avoidance stage starts at the next ACK
    private double _pendingBytes; // growth smaller than a byte, carried over

    public override string Name => "cubic";

    protected override void CongestionAvoidance(long ackedBytes, long nowMicros, long rttMicros)
    {
        double cwnd = (double)Cwnd / Mss;
        double acked = (double)ackedBytes / Mss;
        if (_epochStart < 0)
        {
            // §4.2: a new epoch. K is the time W_cubic needs to return to W_max from the current window.
            _epochStart = nowMicros;
            if (cwnd < _wMax)
                _k = Math.Cbrt((_wMax - cwnd) / C);
            else
            {
                _k = 0;
                _wMax = cwnd;
            }
            _wEst = cwnd;
            if (_cwndPrior == 0) _cwndPrior = cwnd;
        }

        double t = (nowMicros - _epochStart) / 1e6;
        double rtt = rttMicros / 1e6;

        // §4.3: the Reno-friendly estimate; once it reaches the window before the reduction, grow as Reno does.
        double alpha = _wEst >= _cwndPrior ? 1.0 : AlphaReno;
        _wEst += alpha * acked / cwnd;

        double cubic = WCubic(t);
        double targetWindow;
        if (cubic < _wEst)
        {
            targetWindow = _wEst; // Reno-friendly region: cwnd = W_est
        }
        else
        {
            // §4.4/4.5: aim for W_cubic one RTT ahead, never less than now and at most 1.5 times the window.
            double target = Math.Clamp(WCubic(t + rtt), cwnd, 1.5 * cwnd);
            targetWindow = cwnd + (target - cwnd) / cwnd * acked;
        }
        if (targetWindow > cwnd)
        {
            _pendingBytes += (targetWindow - cwnd) * Mss;
            long whole = (long)_pendingBytes;
            Cwnd += whole;
            _pendingBytes -= whole;
        }
    }

    private double WCubic(double t)
    {
        double d = t - _k;
        return C * d * d * d + _wMax;
    }

    public override void OnCongestionEvent(long nowMicros, long flightSize)
    {
        double cwnd = (double)Cwnd / Mss;
        _cwndPrior = cwnd;
        // §4.7 fast convergence: a flow whose W_max keeps falling releases bandwidth to newer flows.
        _wMax = cwnd < _wMax ? cwnd * (1 + Beta) / 2 : cwnd;
        Ssthresh = Math.Max((long)(Cwnd * Beta), 2L * Mss); // §4.6
        _epochStart = -1;
        _pendingBytes = 0;
    }

    /// <summary>§5.8 / Linux: the cubic curve does not advance while the connection sends nothing.</summary>
    public override void OnIdle(long idleMicros)
    {
        if (_epochStart >= 0) _epochStart += idleMicros;
    }
}
