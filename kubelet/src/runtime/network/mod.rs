//! Pod networking, minimal: every sandbox gets its own network namespace, an isolated copy of
//! the network stack with only a loopback interface, which starts *down*. Bringing `lo` up is
//! enough for the containers of one pod to talk over `localhost`. Nothing is ever added to the
//! host's namespace (no veth, routes or iptables); connecting pods to each other is later work.

use std::ffi::CStr;

/// Why the network setup failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// socket(2) for the interface ioctls failed.
    #[error("open control socket: {errno}")]
    Socket { errno: nix::Error },
    /// SIOCGIFFLAGS/SIOCSIFFLAGS on an interface failed.
    #[error("set {interface} up: {errno}")]
    SetUp {
        interface: String,
        errno: nix::Error,
    },
}

/// Bring an interface of the current network namespace up (`ip link set lo up`).
pub fn set_up(interface: &CStr) -> Result<(), NetworkError> {
    // SAFETY: plain socket(2) call; the returned fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetworkError::Socket {
            errno: nix::Error::last(),
        });
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = interface.to_bytes();
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = *src as libc::c_char;
    }
    let fail = |errno| NetworkError::SetUp {
        interface: interface.to_string_lossy().into_owned(),
        errno,
    };
    // SAFETY: fd is a valid socket and req a properly initialised ifreq (netdevice(7)).
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(fail(nix::Error::last()))
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(fail(nix::Error::last()))
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd was returned by socket(2) above and is not used afterwards.
    unsafe { libc::close(fd) };
    result
}

/// Bring the loopback interface up.
pub fn loopback_up() -> Result<(), NetworkError> {
    set_up(c"lo")
}
