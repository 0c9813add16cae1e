namespace TunStack.Tcp.Congestion;

/// <summary>The congestion control algorithms a connection can use.</summary>
public enum CongestionControlAlgorithm
{
    /// <summary>CUBIC (RFC 9438), the default, as in Linux.</summary>
    Cubic,
    /// <summary>NewReno (RFC 5681 slow start and congestion avoidance, RFC 6582 recovery).</summary>
    NewReno,
}

/// <summary>
/// A congestion control algorithm: owns the congestion window (cwnd) and slow-start threshold (ssthresh), in bytes.
/// The connection tells it about acknowledged data and congestion events; loss recovery (SACK, RACK-TLP, PRR) lives in
/// the connection, which sets cwnd directly while recovering (RFC 6937) and hands it back at the end.
/// Arithmetic is in 64-bit bytes, so a 65,495-byte MSS cannot overflow it.
/// </summary>
internal abstract class CongestionControl
{
    /// <summary>No window grows beyond this (1 GiB): far above any buffer, far below overflow.</summary>
    public const long MaxWindow = 1L << 30;

    protected CongestionControl(int mss, long initialWindow)
    {
        Mss = mss;
        Cwnd = initialWindow;
        Ssthresh = MaxWindow; // RFC 5681 §3.1: "arbitrarily high"
    }

    public static CongestionControl Create(CongestionControlAlgorithm algorithm, int mss, long initialWindow) => algorithm switch
    {
        CongestionControlAlgorithm.NewReno => new NewReno(mss, initialWindow),
        _ => new Cubic(mss, initialWindow),
    };

    public abstract string Name { get; }

    /// <summary>Sender maximum segment size in payload bytes (what one segment carries).</summary>
    public int Mss { get; set; }
    public long Cwnd { get; set; }
    public long Ssthresh { get; protected set; }
    public bool InSlowStart => Cwnd < Ssthresh;

    /// <summary>
    /// <paramref name="ackedBytes"/> of new data were acknowledged outside loss recovery while the sender was limited by
    /// cwnd. <paramref name="rttMicros"/> is the smoothed RTT.
    /// </summary>
    public void OnAck(long ackedBytes, long nowMicros, long rttMicros)
    {
        if (ackedBytes <= 0) return;
        if (Cwnd < Ssthresh)
        {
            // Slow start (RFC 5681 §3.1), counting bytes acknowledged as Linux does (RFC 3465 without the per-ACK
            // limit, so that ACKs covering many segments at once — offloads — do not slow the start down).
            long growth = Math.Min(ackedBytes, Ssthresh - Cwnd);
            Cwnd += growth;
            ackedBytes -= growth;
        }
        if (ackedBytes > 0 && Cwnd >= Ssthresh)
            CongestionAvoidance(ackedBytes, nowMicros, rttMicros);
        Cwnd = Math.Min(Cwnd, MaxWindow);
    }

    protected abstract void CongestionAvoidance(long ackedBytes, long nowMicros, long rttMicros);

    /// <summary>
    /// Loss was detected (fast recovery begins, or a loss probe repaired a loss): lower ssthresh. The window itself is
    /// brought down to it by proportional rate reduction during recovery.
    /// </summary>
    public abstract void OnCongestionEvent(long nowMicros, long flightSize);

    /// <summary>The retransmission timer expired: ssthresh as for any congestion event, cwnd to one segment (the loss
    /// window of RFC 5681 §3.1).</summary>
    public void OnRetransmitTimeout(long nowMicros, long flightSize)
    {
        OnCongestionEvent(nowMicros, flightSize);
        Cwnd = Mss;
    }

    /// <summary>Sending resumes after <paramref name="idleMicros"/> without data in flight.</summary>
    public virtual void OnIdle(long idleMicros) { }

    /// <summary>Fast recovery ended: continue from ssthresh (RFC 6937 §3, RFC 6675 §5).</summary>
    public void OnRecoveryEnd() => Cwnd = Math.Max(Ssthresh, Mss);
}
