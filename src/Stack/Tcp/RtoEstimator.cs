namespace TunStack.Tcp;

/// <summary>
/// The retransmission timeout of RFC 6298: SRTT/RTTVAR smoothing (§2), exponential backoff (§5.5),
/// and Karn's rule (§3: samples only from segments never retransmitted, enforced by the caller).
/// Times are microseconds.
/// </summary>
internal struct RtoEstimator
{
    private const int Alpha_Shift = 3; // alpha = 1/8
    private const int Beta_Shift = 2;  // beta  = 1/4
    private const long ClockGranularity = 1_000; // G = 1 ms

    private long _srtt;
    private long _rttvar;
    private bool _hasSample;
    private int _backoff;

    public long MinRto;
    public long MaxRto;
    public long Base { get; private set; }

    public RtoEstimator(long initialRto, long minRto, long maxRto)
    {
        Base = initialRto; // RFC 6298 §2.1: RTO <- 1 second before any measurement
        MinRto = minRto;
        MaxRto = maxRto;
    }

    /// <summary>The current timeout including backoff.</summary>
    public readonly long Current => Math.Min(MaxRto, Base << Math.Min(_backoff, 16));

    public readonly long SmoothedRtt => _srtt;
    public readonly bool HasSample => _hasSample;

    public void AddSample(long rtt)
    {
        if (rtt < 0) return;
        if (!_hasSample)
        {
            // RFC 6298 §2.2: first measurement.
            _srtt = rtt;
            _rttvar = rtt / 2;
            _hasSample = true;
        }
        else
        {
            // RFC 6298 §2.3: RTTVAR <- (1 - beta) RTTVAR + beta |SRTT - R'|; SRTT <- (1 - alpha) SRTT + alpha R'
            _rttvar += (Math.Abs(_srtt - rtt) - _rttvar) >> Beta_Shift;
            _srtt += (rtt - _srtt) >> Alpha_Shift;
        }
        Base = Math.Clamp(_srtt + Math.Max(ClockGranularity, 4 * _rttvar), MinRto, MaxRto);
        _backoff = 0; // a fresh sample ends backoff (RFC 6298 §5.7)
    }

    /// <summary>RFC 6298 §5.7: a SYN was retransmitted and nothing was measured: use at least <paramref name="rto"/>.</summary>
    public void FallBack(long rto)
    {
        Base = Math.Max(Base, Math.Min(rto, MaxRto));
        _backoff = 0;
    }

    /// <summary>RFC 6298 §5.5: double the timer on expiry.</summary>
    public void BackOff() => _backoff++;

    public void ResetBackoff() => _backoff = 0;
}
