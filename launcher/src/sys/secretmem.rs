//! Memory for key material. `memfd_secret` where the kernel has it: the
//! pages are removed from the kernel's direct map, never swapped and never
//! in a core dump. Otherwise an anonymous mapping locked with `mlock`. In
//! both cases `MADV_DONTFORK` (a forked child, such as a broker's
//! per-request process, never inherits the pages) and `MADV_DONTDUMP`.

use std::ops::Deref;
use std::ptr::NonNull;

use nix::errno::Errno;

/// Where a [`SecretBox`] lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// `memfd_secret` pages.
    Secret,
    /// An `mlock`ed anonymous mapping.
    Locked,
    /// An anonymous mapping the kernel refused to lock (RLIMIT_MEMLOCK).
    Unlocked,
}

impl Backing {
    pub fn describe(self) -> &'static str {
        match self {
            Backing::Secret => "memfd_secret memory",
            Backing::Locked => "mlock'ed memory (no memfd_secret on this kernel)",
            Backing::Unlocked => "ordinary memory (memfd_secret and mlock both refused)",
        }
    }
}

/// One value of `T` in its own mapping, wiped and unmapped on drop. `T`
/// must keep its secret inline (no heap pointers) for the secret to live
/// only here.
pub struct SecretBox<T> {
    ptr: NonNull<T>,
    len: usize,
    backing: Backing,
}

impl<T> SecretBox<T> {
    /// Moves `value` into a fresh mapping.
    pub fn new(value: T) -> Result<Self, Errno> {
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as usize;
        assert!(std::mem::align_of::<T>() <= page);
        let len = std::mem::size_of::<T>().max(1).div_ceil(page) * page;
        let (addr, backing) = match map_secret(len) {
            Ok(addr) => (addr, Backing::Secret),
            Err(_) => map_locked(len)?,
        };
        // SAFETY: both advices only change how the kernel treats this new
        // mapping of `len` bytes; failures leave it usable.
        unsafe {
            libc::madvise(addr, len, libc::MADV_DONTFORK);
            libc::madvise(addr, len, libc::MADV_DONTDUMP);
        }
        let ptr = NonNull::new(addr.cast::<T>()).ok_or(Errno::ENOMEM)?;
        // SAFETY: the mapping is writable, page-aligned (so aligned for T)
        // and at least size_of::<T>() bytes long; nothing else refers to it.
        unsafe { ptr.as_ptr().write(value) };
        Ok(SecretBox { ptr, len, backing })
    }

    pub fn backing(&self) -> Backing {
        self.backing
    }
}

/// Whether this kernel gives `memfd_secret` memory (one is created and
/// closed at once).
pub fn available() -> Result<(), Errno> {
    // SAFETY: memfd_secret takes flags only and returns a new descriptor,
    // closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC as libc::c_uint) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `fd` was just created here and is not used again.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

fn map_secret(len: usize) -> Result<*mut libc::c_void, Errno> {
    // SAFETY: memfd_secret takes flags only and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC as libc::c_uint) };
    if fd < 0 {
        return Err(Errno::last());
    }
    let fd = fd as libc::c_int;
    // SAFETY: `fd` is the descriptor just created and owned here; the
    // mapping is new, at an address the kernel chooses. The mapping keeps
    // the memory alive after the descriptor is closed.
    unsafe {
        if libc::ftruncate(fd, len as libc::off_t) != 0 {
            let e = Errno::last();
            libc::close(fd);
            return Err(e);
        }
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        libc::close(fd);
        if addr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(addr)
    }
}

fn map_locked(len: usize) -> Result<(*mut libc::c_void, Backing), Errno> {
    // SAFETY: a new private anonymous mapping at an address the kernel
    // chooses; `mlock` only pins its pages.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if addr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let backing = if libc::mlock(addr, len) == 0 {
            Backing::Locked
        } else {
            Backing::Unlocked
        };
        Ok((addr, backing))
    }
}

impl<T> Deref for SecretBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` holds the value written in `new` until drop.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for SecretBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value is dropped once (its own wiping runs), then the
        // whole mapping is overwritten with volatile writes (so the
        // compiler cannot drop them) and unmapped; `ptr` is not used again.
        unsafe {
            std::ptr::drop_in_place(self.ptr.as_ptr());
            let bytes = self.ptr.as_ptr().cast::<u8>();
            for i in 0..self.len {
                std::ptr::write_volatile(bytes.add(i), 0);
            }
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

impl<T> std::fmt::Debug for SecretBox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBox({:?}, [redacted])", self.backing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_value_and_reports_its_backing() {
        let b = SecretBox::new([7u8; 64]).unwrap();
        assert_eq!(b[10], 7);
        assert!(format!("{b:?}").contains("redacted"));
        assert_ne!(
            b.backing(),
            Backing::Unlocked,
            "neither memfd_secret nor mlock worked"
        );
    }

    #[test]
    fn the_value_is_dropped() {
        use std::sync::atomic::{AtomicBool, Ordering};
        static DROPPED: AtomicBool = AtomicBool::new(false);
        struct D;
        impl Drop for D {
            fn drop(&mut self) {
                DROPPED.store(true, Ordering::SeqCst);
            }
        }
        drop(SecretBox::new(D).unwrap());
        assert!(DROPPED.load(Ordering::SeqCst));
    }
}
