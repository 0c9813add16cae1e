namespace TunStack.Linux;

/// <summary>A TUN system call failed; <see cref="Errno"/> is the C library's error number.</summary>
public sealed class TunDeviceException : IOException
{
    /// <summary>A failure with the C library's <paramref name="errno"/> and an explanation.</summary>
    public TunDeviceException(int errno, string message) : base(message) => Errno = errno;

    /// <summary>The C library's error number (errno).</summary>
    public int Errno { get; }

    /// <summary>EBUSY: the device is held by another process (a single-queue TUN device has one user).</summary>
    public bool IsBusy => Errno == Native.EBUSY;
}
