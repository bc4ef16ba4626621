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

/// The most descriptors a sandbox's child passes in one message.
pub(crate) const CHILD_FDS: usize = 2;

/// Control-message space for [`CHILD_FDS`] descriptors, aligned for
/// `cmsghdr` (on the stack: for children between `clone` and `exec`).
#[repr(C, align(8))]
struct ChildCmsg([u8; 64]);

/// A message of the one byte `iov` points at, with the first `control`
/// bytes of `space` as its control data (none when 0). The pointers in it
/// are `iov`'s and `space`'s: the message is used while both live.
fn one_byte_message(iov: &mut libc::iovec, space: &mut ChildCmsg, control: usize) -> libc::msghdr {
    assert!(control <= space.0.len());
    // SAFETY: an all-zero msghdr is valid: null pointers, zero lengths.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    if control > 0 {
        msg.msg_control = space.0.as_mut_ptr().cast();
        msg.msg_controllen = control;
    }
    msg
}

/// For a child between `clone` and `exec` (system calls only, no
/// allocation): sends one byte with `fds` (at most [`CHILD_FDS`]).
pub(crate) fn child_send(sock: RawFd, fds: &[RawFd]) -> Result<(), crate::sys::Errno> {
    assert!(fds.len() <= CHILD_FDS);
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = ChildCmsg([0; 64]);
    let data_len = std::mem::size_of_val(fds) as u32;
    let control = if fds.is_empty() {
        0
    } else {
        // SAFETY: CMSG_SPACE is arithmetic on a length.
        unsafe { libc::CMSG_SPACE(data_len) as usize }
    };
    let msg = one_byte_message(&mut iov, &mut space, control);
    // SAFETY: `msg` points at `byte` and `space`, which outlive the call.
    // CMSG_* compute offsets within `space`, which is large enough for
    // CMSG_SPACE(data_len) (checked) and aligned for cmsghdr.
    unsafe {
        if !fds.is_empty() {
            let c = libc::CMSG_FIRSTHDR(&raw const msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        }
        crate::sys::check(libc::sendmsg(sock, &raw const msg, libc::MSG_NOSIGNAL) as libc::c_long)
            .map(drop)
    }
}

/// For a child between `clone` and `exec`: receives one message sent by
/// [`child_send`] into `out` (close-on-exec); returns how many came. A
/// closed socket is `ECONNRESET`; a truncated message closes what came.
pub(crate) fn child_recv(
    sock: RawFd,
    out: &mut [RawFd; CHILD_FDS],
) -> Result<usize, crate::sys::Errno> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = ChildCmsg([0; 64]);
    let control = space.0.len();
    let mut msg = one_byte_message(&mut iov, &mut space, control);
    // SAFETY: `msg` points at `byte` and `space`, which outlive the call;
    // the kernel writes at most `msg_controllen` bytes into `space`, and
    // CMSG_* walk only what it wrote. The descriptors read out are this
    // process's, now ours.
    unsafe {
        let n = loop {
            match crate::sys::check(
                libc::recvmsg(sock, &raw mut msg, libc::MSG_CMSG_CLOEXEC) as libc::c_long
            ) {
                Err(libc::EINTR) => {}
                other => break other?,
            }
        };
        if n == 0 {
            return Err(libc::ECONNRESET);
        }
        let mut got = 0;
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = bytes / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..count {
                    let fd = data.add(i).read_unaligned();
                    if got < CHILD_FDS {
                        out[got] = fd;
                        got += 1;
                    } else {
                        libc::close(fd);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(libc::EMSGSIZE);
        }
        Ok(got)
    }
}
