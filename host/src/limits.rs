//! Process limits the host needs raised before it serves.

/// Raises the soft limit on open files to the hard limit and returns
/// `(soft before, soft now)`. Every request holds a client socket, and
/// most hold outbound ones too (S3, the bridge, PostgreSQL); with a soft
/// limit of 1024, the common default, a burst of a few hundred clients
/// fails with "Too many open files" on accept and on connect, although the
/// hard limit (what an unprivileged process may raise itself to) is far
/// higher. Spin leaves this to the service manager; the host does it
/// itself so that `./x up` and the tests behave like a tuned deployment.
pub fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `limit`, which lives on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads only `limit`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in the function under test.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        }
        let hard = limit.rlim_max;
        // Lowered first, as a default 1024 would be; raising it back to the
        // hard limit is always allowed.
        limit.rlim_cur = 256.min(hard);
        // SAFETY: as above.
        unsafe {
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
        let (before, now) = raise_open_file_limit().unwrap();
        assert_eq!(before, 256.min(hard));
        assert_eq!(now, hard);
        assert_eq!(raise_open_file_limit().unwrap(), (hard, hard), "idempotent");
    }
}
