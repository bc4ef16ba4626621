//! Passing descriptors over a Unix socket (`SCM_RIGHTS`): the client of
//! the broker sends its stdin, stdout, stderr and working directory.
//! Receiving takes ownership of raw descriptors the kernel installed,
//! which needs `unsafe`; everything else is `nix`'s safe API.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// The most descriptors one message may carry.
pub const MAX_FDS: usize = 8;

/// Sends `bytes` (all of them) with `fds` attached to the first byte.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let mut sent = 0;
    while sent < bytes.len() {
        let iov = [IoSlice::new(&bytes[sent..])];
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !raw.is_empty() {
            &cmsg
        } else {
            &[]
        };
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What one [`recv`] got.
#[derive(Debug)]
pub struct Received {
    /// Bytes read (0 at end of stream).
    pub len: usize,
    /// The descriptors that came with them, close-on-exec.
    pub fds: Vec<OwnedFd>,
    /// The sending process, as the kernel recorded it when the bytes were
    /// sent (`SCM_CREDENTIALS`; only with `SO_PASSCRED` on this socket).
    pub sender: Option<i32>,
}

/// Receives into `buf`. A message whose descriptors did not fit is an
/// error (they were closed by the kernel). With `SO_PASSCRED` set, one call
/// never joins bytes of two senders, so [`Received::sender`] is theirs.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<Received> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS], nix::libc::ucred);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    let mut sender = None;
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::ScmRights(raw) => {
                for fd in raw {
                    // SAFETY: the kernel just installed `fd` in this process
                    // for this message; nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
            ControlMessageOwned::ScmCredentials(creds) => sender = Some(creds.pid()),
            _ => {}
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(std::io::Error::other("too many descriptors in one message"));
    }
    Ok(Received {
        len: msg.bytes,
        fds,
        sender,
    })
}

/// Has the kernel record this process's credentials on what it sends on
/// `sock`, and hand the peer's to [`recv`] (`SO_PASSCRED`).
pub fn pass_credentials(sock: BorrowedFd<'_>) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)?;
    Ok(())
}
