//! End-to-end tests across the stack with real processes on 127.0.0.1 (in `tests/`): the
//! `rsu demo` run with a real daemon, simulated sensors and connected cars.
