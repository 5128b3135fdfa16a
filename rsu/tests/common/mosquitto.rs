//! A real Mosquitto broker for the northbound tests: started from a generated configuration on
//! a free loopback port in a temporary directory, killed (SIGKILL, as a crash) and started again
//! on the same port, stopped when dropped. Mosquitto is a Debian package (`apt-get install
//! mosquitto`; `.ci/run` installs it): without it the tests fail saying so, they do not skip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed) broker.
pub struct Broker {
    child: Option<Child>,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
}

/// The Mosquitto executable, or a panic that says how to install it.
pub fn mosquitto() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("mosquitto"));
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "mosquitto is not installed: the northbound tests need a real broker. Install the Debian package \
         (`apt-get install mosquitto`); .ci/run does this before the tests"
    );
}

impl Broker {
    /// Starts Mosquitto in `dir` on a free port with `listener` options (lines after the
    /// `listener` line: TLS, authentication) and persistence in `dir` saved every second.
    pub fn start(dir: &Path, listener: &str) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let config = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        // `user root`: when the tests run as root (CI) the broker keeps root instead of switching
        // to a user that cannot read the temporary directory; ignored otherwise.
        let text = format!(
            "user root\nper_listener_settings false\npersistence true\npersistence_location {}/\nautosave_interval 1\n\
             log_dest file {}\nlog_type all\nlistener {port} 127.0.0.1\n{listener}\n",
            dir.display(),
            log.display()
        );
        std::fs::write(&config, text).expect("write mosquitto.conf");
        let mut broker = Broker { child: None, port, config, log };
        broker.restart();
        broker
    }

    /// Starts the broker again (same configuration, port and persistence) and waits until it
    /// accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "mosquitto did not listen on {addr} (exit {exited:?}); its log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker with SIGKILL (a crash: no goodbye to its clients, no final save).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The broker's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
