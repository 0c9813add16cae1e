using TunStack.Tcp.Congestion;

namespace TunStack.Tests.Tcp.Congestion;

/// <summary>
/// CUBIC (RFC 9438), driven directly. A "round" is one ACK covering a whole window one RTT after the previous one,
/// which moves cwnd all the way to the target of §4.4 (or to W_est in the Reno-friendly region, §4.3). The expected
/// values come from the RFC's formulas written out here, in segments and seconds: W_cubic(t) = C·(t − K)³ + W_max with
/// C = 0.4 and K = ∛((W_max − cwnd_epoch) / C) (§4.2). cwnd is kept in bytes, so it may trail the formula by a byte.
/// </summary>
public class CubicTests
{
    private const int Mss = 1000;
    private const double C = 0.4;
    private const double Beta = 0.7;
    private const long Second = 1_000_000;

    private static double WCubic(double t, double k, double wMax) => C * Math.Pow(t - k, 3) + wMax;

    /// <summary>A CUBIC flow that lost at <paramref name="wMax"/> segments and left recovery with cwnd = ssthresh.</summary>
    private static Cubic AfterLossAt(int wMax)
    {
        var cc = new Cubic(Mss, 10 * Mss);
        cc.Cwnd = (long)wMax * Mss;
        cc.OnCongestionEvent(0, cc.Cwnd);
        cc.OnRecoveryEnd();
        return cc;
    }

    /// <summary>One round: an ACK of the whole window at <paramref name="now"/>. Returns cwnd in segments.</summary>
    private static double Round(Cubic cc, long now, long rtt)
    {
        cc.OnAck(cc.Cwnd, now, rtt);
        return (double)cc.Cwnd / Mss;
    }

    [Fact]
    public void Slow_start_grows_by_the_bytes_acknowledged_up_to_ssthresh()
    {
        var cc = new Cubic(Mss, 10 * Mss);
        Assert.Equal("cubic", cc.Name);
        cc.OnAck(10 * Mss, 0, 100_000);
        Assert.Equal(20 * Mss, cc.Cwnd);

        cc = AfterLossAt(100);
        cc.Cwnd = 10 * Mss;                        // e.g. after a timeout: slow start up to ssthresh (70)
        cc.OnAck(60 * Mss, 0, 100_000);
        Assert.Equal(70 * Mss, cc.Cwnd);
        Assert.False(cc.InSlowStart);
    }

    /// <summary>RFC 9438 §4.6: ssthresh = cwnd · β_cubic, β_cubic = 0.7, and never below two segments.</summary>
    [Theory]
    [InlineData(100 * Mss, 70 * Mss)]
    [InlineData(10 * Mss, 7 * Mss)]
    [InlineData(2 * Mss, 2 * Mss)]
    public void Loss_multiplies_the_window_by_beta(long cwnd, long ssthresh)
    {
        var cc = new Cubic(Mss, 10 * Mss) { Cwnd = cwnd };
        cc.OnCongestionEvent(0, cwnd);
        Assert.Equal(ssthresh, cc.Ssthresh);
        Assert.Equal(cwnd, cc.Cwnd);               // PRR brings cwnd down during recovery; the end sets it
        cc.OnRecoveryEnd();
        Assert.Equal(ssthresh, cc.Cwnd);
    }

    [Fact]
    public void Retransmission_timeout_leaves_one_segment_and_ssthresh_at_beta_cwnd()
    {
        var cc = new Cubic(Mss, 10 * Mss) { Cwnd = 40 * Mss };
        cc.OnRetransmitTimeout(0, 40 * Mss);
        Assert.Equal(Mss, cc.Cwnd);
        Assert.Equal(28 * Mss, cc.Ssthresh);       // RFC 9438 §4.8: β_cubic as for any loss
    }

    /// <summary>
    /// The window in one round by the RFC's rules (§4.3-4.4), in segments: W_est grows by α (a whole window acknowledged);
    /// if W_cubic(t) &lt; W_est the flow is in the Reno-friendly region and cwnd = W_est, otherwise cwnd moves to
    /// target = W_cubic(t + RTT), kept within [cwnd, 1.5·cwnd].
    /// </summary>
    private static double ModelRound(ref double cwnd, ref double wEst, double cwndPrior, double t, double rtt, double k, double wMax)
    {
        wEst += wEst >= cwndPrior ? 1 : 3 * (1 - Beta) / (1 + Beta);
        if (WCubic(t, k, wMax) < wEst)
            return cwnd = Math.Max(cwnd, wEst);
        return cwnd = Math.Clamp(WCubic(t + rtt, k, wMax), cwnd, 1.5 * cwnd);
    }

    /// <summary>
    /// RFC 9438 §4.2 and §4.4: after a loss at W_max = 1000 segments (RTT 500 ms, so the Reno-friendly estimate stays far
    /// below) the window follows W_cubic one RTT ahead — concave below W_max, growth slowing as it approaches, reaching
    /// W_max at t = K − RTT with K = ∛(300 / 0.4) = 9.086 s, then convex, growth speeding up as it probes beyond.
    /// </summary>
    [Fact]
    public void Window_follows_w_cubic_concave_up_to_w_max_at_k_then_convex()
    {
        const long rtt = 500_000;
        var cc = AfterLossAt(1000);
        Assert.Equal(700 * Mss, cc.Cwnd);
        double k = Math.Cbrt((1000 - 700) / C);
        Assert.Equal(9.0856, k, 4);

        long epoch = 5 * Second;
        double model = 700, wEst = 700;
        var windows = new List<double>();
        for (int n = 0; n <= 40; n++)
        {
            double t = n * rtt / 1e6;
            double cwnd = Round(cc, epoch + n * rtt, rtt);
            ModelRound(ref model, ref wEst, 1000, t, rtt / 1e6, k, 1000);
            Assert.True(Math.Abs(cwnd - model) < 1.0 / Mss + 1e-9, $"t = {t:F1} s: cwnd {cwnd:F4} segments, RFC {model:F4}");
            if (n > 0) Assert.True(WCubic(t, k, 1000) >= wEst, "the cubic region throughout");
            windows.Add(cwnd);
        }

        // Rounds 1..16 aim before K (t + RTT < 9.086 s): below W_max, each step smaller than the one before (concave).
        // Rounds 18.. aim past K: above W_max, each step larger than the one before (convex).
        for (int n = 2; n <= 16; n++)
            Assert.True(windows[n] - windows[n - 1] < windows[n - 1] - windows[n - 2], $"concave at round {n}");
        Assert.All(windows.Take(17), w => Assert.True(w < 1000));
        for (int n = 19; n <= 40; n++)
            Assert.True(windows[n] - windows[n - 1] > windows[n - 1] - windows[n - 2], $"convex at round {n}");
        Assert.All(windows.Skip(18), w => Assert.True(w > 1000));

        // At exactly t = K − RTT the target is W_cubic(K) = W_max.
        var at = AfterLossAt(1000);
        Round(at, epoch, rtt);
        double cwndAtK = Round(at, epoch + (long)Math.Round((k - rtt / 1e6) * 1e6), rtt);
        Assert.InRange(cwndAtK * Mss, 1000 * Mss - 1, 1000 * Mss);
    }

    /// <summary>
    /// RFC 9438 §4.7 fast convergence: a loss at a window below the previous W_max (80 &lt; 100) sets W_max =
    /// cwnd · (1 + β) / 2 = 68, not 80, so the flow plateaus lower and releases bandwidth: K = ∛((68 − 56) / 0.4).
    /// </summary>
    [Fact]
    public void Fast_convergence_lowers_w_max_when_losses_come_at_smaller_windows()
    {
        const long rtt = 100_000;
        var cc = AfterLossAt(100);
        cc.Cwnd = 80 * Mss;
        cc.OnCongestionEvent(10 * Second, cc.Cwnd);
        Assert.Equal(56 * Mss, cc.Ssthresh);
        cc.OnRecoveryEnd();

        double wMax = 80 * (1 + Beta) / 2;
        Assert.Equal(68, wMax, 10);
        double k = Math.Cbrt((wMax - 56) / C);
        long epoch = 11 * Second;
        double model = 56, wEst = 56;
        for (int n = 0; n <= 60; n++)
        {
            double cwnd = Round(cc, epoch + n * rtt, rtt);
            ModelRound(ref model, ref wEst, 80, n * rtt / 1e6, rtt / 1e6, k, wMax);
            Assert.True(Math.Abs(cwnd - model) < 1.0 / Mss + 1e-9, $"round {n}: cwnd {cwnd:F4}, RFC {model:F4}");
        }
        // The plateau is at 68: at t = K − RTT the window is W_max = 68 (without fast convergence it would be 79.8).
        var at = AfterLossAt(100);
        at.Cwnd = 80 * Mss;
        at.OnCongestionEvent(10 * Second, at.Cwnd);
        at.OnRecoveryEnd();
        Round(at, epoch, rtt);
        Assert.InRange(Round(at, epoch + (long)Math.Round((k - rtt / 1e6) * 1e6), rtt) * Mss, 68 * Mss - 1, 68 * Mss);
    }

    /// <summary>
    /// RFC 9438 §4.3: while W_cubic(t) is below the Reno-friendly estimate W_est, cwnd = W_est, and W_est grows by
    /// α_cubic = 3(1 − β)/(1 + β) = 0.529 segments per window until it reaches cwnd_prior (10), then by 1. With a 10 ms
    /// RTT and a loss at 10 segments, Reno would outgrow the cubic curve, so CUBIC grows like Reno.
    /// </summary>
    [Fact]
    public void Reno_friendly_region_grows_like_aimd_with_alpha_then_like_reno()
    {
        const long rtt = 10_000;
        var cc = AfterLossAt(10);
        Assert.Equal(7 * Mss, cc.Cwnd);
        double alpha = 3 * (1 - Beta) / (1 + Beta);
        double k = Math.Cbrt((10 - 7) / C);
        double wEst = 7;
        for (int n = 0; n < 10; n++)
        {
            double a = wEst >= 10 ? 1 : alpha;
            wEst += a; // a whole window acknowledged: W_est += α · cwnd / cwnd
            double cwnd = Round(cc, 20 * Second + n * rtt, rtt);
            Assert.True(WCubic(n * rtt / 1e6, k, 10) < wEst);
            Assert.True(Math.Abs(cwnd - wEst) < 1.0 / Mss + 1e-9, $"round {n}: cwnd {cwnd:F4}, W_est {wEst:F4}");
        }
        Assert.Equal(7 + 6 * alpha + 4, wEst, 10); // six rounds at α to pass 10, four at 1
    }

    /// <summary>The cubic curve does not advance while the connection is idle (RFC 9438 §5.8, as Linux does).</summary>
    [Fact]
    public void Idle_time_does_not_advance_the_curve()
    {
        const long rtt = 100_000;
        var busy = AfterLossAt(100);
        var idle = AfterLossAt(100);
        Round(busy, 0, rtt);
        Round(idle, 0, rtt);
        Round(busy, rtt, rtt);
        Round(idle, rtt, rtt);
        idle.OnIdle(30 * Second);
        Assert.Equal(Round(busy, 2 * rtt, rtt), Round(idle, 2 * rtt + 30 * Second, rtt));
    }

    /// <summary>The largest MSS IPv4 allows (65535 − 40) and windows at the 1 GiB cap: no overflow, no negative window.</summary>
    [Fact]
    public void Huge_windows_with_a_65495_byte_mss_do_not_overflow()
    {
        const int mss = 65495;
        var cc = new Cubic(mss, 10L * mss);
        for (int i = 0; i < 4; i++) cc.OnAck(1L << 30, 0, 100_000);
        Assert.Equal(CongestionControl.MaxWindow, cc.Cwnd);

        cc.OnCongestionEvent(Second, cc.Cwnd);
        Assert.Equal((long)(CongestionControl.MaxWindow * Beta), cc.Ssthresh);
        cc.OnRecoveryEnd();
        long previous = cc.Cwnd;
        for (long n = 0; n < 100_000; n++) // 10,000 seconds of rounds: far past K, where W_cubic is astronomically large
        {
            cc.OnAck(Math.Min(cc.Cwnd, 1L << 30), 2 * Second + n * 100_000, 100_000);
            Assert.InRange(cc.Cwnd, previous, CongestionControl.MaxWindow);
            previous = cc.Cwnd;
        }
        Assert.Equal(CongestionControl.MaxWindow, cc.Cwnd);

        cc.OnRetransmitTimeout(3 * Second, cc.Cwnd);
        Assert.Equal(mss, cc.Cwnd);
        Assert.Equal((long)(CongestionControl.MaxWindow * Beta), cc.Ssthresh);
    }
}
