//! The bench's child processes: each is started with its stdout piped (the bench waits for the
//! lines a child prints when it is ready) and its stderr in a log file of its own, and its CPU
//! time is read from `/proc/<pid>/stat` while it runs and at its very end (a process that has
//! exited but is not yet reaped still shows its final CPU time), so the bench can say which
//! process used how much CPU in each phase. A child still running when dropped is killed.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux
/// architecture; the kernel scales its internal tick to it for user space).
const USER_HZ: f64 = 100.0;

/// User plus system CPU time of process `pid` so far [s], and whether it has exited (a zombie:
/// the figure is final). `None` once the process is gone.
pub fn cpu_time_s(pid: u32) -> Option<(f64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: fields are counted
    // after its closing parenthesis, from the state (field 3).
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // Fields 14 (utime) and 15 (stime) of proc(5) are at 11 and 12 from the state.
    let cpu = (ticks(11)? + ticks(12)?) as f64 / USER_HZ;
    Some((cpu, fields.first() == Some(&"Z")))
}

/// A running child process of the bench.
pub struct Proc {
    /// What it is (for messages).
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    log: PathBuf,
    last_cpu_s: f64,
}

impl Proc {
    /// Starts `program args…` with stdout piped, stderr to `<dir>/<name>.log`, and `RUST_LOG`
    /// passed on (default `warn`: a child's logs go to its file, not the bench's output). With
    /// `stdin_pipe` its stdin is a pipe the bench can close ([`Proc::close_stdin`]) to tell it to
    /// finish.
    pub fn start<S: AsRef<OsStr>>(
        name: &str,
        program: &Path,
        args: &[S],
        dir: &Path,
        stdin_pipe: bool,
    ) -> anyhow::Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(if stdin_pipe { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { name: name.to_owned(), child, lines, log, last_cpu_s: 0.0 })
    }

    /// Starts this executable (`rsu-lab`) with `args` (its hidden bench roles and `serve`).
    pub fn start_lab<S: AsRef<OsStr>>(name: &str, args: &[S], dir: &Path, stdin_pipe: bool) -> anyhow::Result<Proc> {
        let exe = std::env::current_exe().context("finding the rsu-lab executable")?;
        Proc::start(name, &exe, args, dir, stdin_pipe)
    }

    /// Its log file (stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Waits (up to `timeout`) for a stdout line starting with `prefix` and returns the rest of
    /// it; fails with the end of the child's log when it exits first.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        Ok(self.wait_lines(&[prefix], timeout)?.remove(0))
    }

    /// Waits (up to `timeout`) for a stdout line starting with each of `prefixes`, in any order,
    /// and returns the rest of each line in the order of `prefixes`.
    pub fn wait_lines(&mut self, prefixes: &[&str], timeout: Duration) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut found: Vec<Option<String>> = vec![None; prefixes.len()];
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    for (prefix, slot) in prefixes.iter().zip(&mut found) {
                        if let Some(rest) = line.strip_prefix(prefix) {
                            *slot = Some(rest.trim().to_owned());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{} did not print {prefixes:?} within {timeout:?}; see {}", self.name, self.log.display())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(10).collect();
                    bail!(
                        "{} exited ({status}) before printing {prefixes:?}: {}",
                        self.name,
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    )
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// The rest of every stdout line printed so far (and not yet taken) that starts with
    /// `prefix`.
    pub fn take_lines(&mut self, prefix: &str) -> Vec<String> {
        self.lines.try_iter().filter_map(|l| l.strip_prefix(prefix).map(|r| r.trim().to_owned())).collect()
    }

    /// Its CPU time so far [s] (the last figure read once it is gone).
    pub fn cpu_s(&mut self) -> f64 {
        if let Some((cpu, _)) = cpu_time_s(self.child.id()) {
            self.last_cpu_s = cpu;
        }
        self.last_cpu_s
    }

    /// Closes its stdin (the bench's roles that read stdin finish on end of file).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits (up to `timeout`) for it to exit by itself, reading its CPU time until the end; its
    /// final CPU time is then [`Proc::cpu_s`]. Fails if it does not exit in time or exits with an
    /// error.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let status = self.reap_until(deadline)?;
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("{} exited with {status}; see {}", self.name, self.log.display()),
            None => bail!("{} did not finish within {timeout:?}; see {}", self.name, self.log.display()),
        }
    }

    /// Stops it with SIGTERM (its clean shutdown), waits up to 15 s, then kills it. Its CPU time
    /// is read to the end.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait().context("polling a child")?.is_some() {
            return Ok(());
        }
        self.cpu_s();
        let pid = i32::try_from(self.child.id()).context("child pid")?;
        // ESRCH: it has just exited by itself, which is what we want.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        if self.reap_until(Instant::now() + Duration::from_secs(15))?.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            bail!("{} did not stop within 15 s of SIGTERM (killed); see {}", self.name, self.log.display());
        }
        Ok(())
    }

    /// Reads its CPU time every 20 ms until it has exited (then the figure is final) and reaps
    /// it; `None` if `deadline` passes first.
    fn reap_until(&mut self, deadline: Instant) -> anyhow::Result<Option<ExitStatus>> {
        loop {
            match cpu_time_s(self.child.id()) {
                Some((cpu, exited)) => {
                    self.last_cpu_s = cpu;
                    if exited {
                        return Ok(Some(self.child.wait().context("reaping a child")?));
                    }
                }
                None => return Ok(Some(self.child.wait().context("reaping a child")?)),
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_a_busy_child_grows_and_is_final_after_exit() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        // A shell loop (builtins only: a child process's CPU would not be the shell's) burns
        // a few tenths of a second of CPU, then exits.
        let mut p = Proc::start(
            "busy",
            Path::new("/bin/sh"),
            &["-c", "i=0; while [ $i -lt 500000 ]; do i=$((i+1)); done"],
            dir,
            false,
        )
        .expect("start");
        p.wait_exit(Duration::from_secs(20)).expect("exits");
        let cpu = p.cpu_s();
        assert!(cpu >= 0.05, "a busy loop used CPU: {cpu}");
        assert!(cpu_time_s(p.child.id()).is_none(), "reaped");
    }

    #[test]
    fn a_line_is_awaited_and_an_early_exit_explained() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let mut p = Proc::start("echo", Path::new("/bin/sh"), &["-c", "echo noise; echo 'ready at 42'"], dir, false)
            .expect("start");
        assert_eq!(p.wait_line("ready at ", Duration::from_secs(10)).expect("line"), "42");
        let mut r = Proc::start("two", Path::new("/bin/sh"), &["-c", "echo b 2; echo a 1; sleep 5"], dir, false)
            .expect("start");
        assert_eq!(r.wait_lines(&["a ", "b "], Duration::from_secs(10)).expect("lines"), ["1", "2"]);
        r.stop().expect("SIGTERM stops it");
        let mut q =
            Proc::start("fails", Path::new("/bin/sh"), &["-c", "echo oops >&2; exit 3"], dir, false).expect("start");
        let e = q.wait_line("ready", Duration::from_secs(10)).expect_err("exits first").to_string();
        assert!(e.contains("oops") && e.contains('3'), "{e}");
    }
}
