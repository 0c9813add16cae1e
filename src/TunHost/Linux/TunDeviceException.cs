namespace TunStack.Host.Linux;

/// <summary>A TUN system call failed; <see cref="Errno"/> is the C library's error number.</summary>
public sealed class TunDeviceException : IOException
{
    public TunDeviceException(int errno, string message) : base(message) => Errno = errno;

    public int Errno { get; }
}
