//! Tests of the motion models: behaviour (turns, convergence, conversions), agreement with dense
//! textbook forms (the Joseph-form update, `F P Fᵀ`, nalgebra's Cholesky) within rounding, and
//! agreement bit for bit with the plain reference implementation in `reference`.

use nalgebra::{Matrix2, SMatrix, SVector, Vector2};
use std::f64::consts::PI;

use super::guard::{Guard, all_finite, guard_covariance, is_positive_definite, repair_covariance, symmetrise};
use super::update::{Leading, ekf_update_leading};
use super::{Kinematics, Matrix5, MotionFamily, MotionState, ProcessNoise, Vector5, nearest_branch, wrap_angle};

mod reference;

/// Whether two matrices are equal bit for bit.
fn same_bits<const R: usize, const C: usize>(a: &SMatrix<f64, R, C>, b: &SMatrix<f64, R, C>) -> bool {
    a.iter().zip(b.iter()).all(|(u, v)| u.to_bits() == v.to_bits())
}

/// Whether two motion states are equal bit for bit.
fn same_state(a: &MotionState, b: &MotionState) -> bool {
    match (a, b) {
        (MotionState::Ctrv { x, p }, MotionState::Ctrv { x: x2, p: p2 }) => same_bits(x, x2) && same_bits(p, p2),
        (MotionState::Cv { x, p }, MotionState::Cv { x: x2, p: p2 }) => same_bits(x, x2) && same_bits(p, p2),
        (MotionState::Static { x, p }, MotionState::Static { x: x2, p: p2 }) => same_bits(x, x2) && same_bits(p, p2),
        _ => false,
    }
}

/// A random covariance for the equality tests: well conditioned, near singular, indefinite,
/// badly scaled or (rarely) with a non-finite or huge entry, so the guard takes every branch.
fn awkward_cov<const N: usize>(rng: &mut impl rand::Rng, k: usize) -> SMatrix<f64, N, N> {
    let scale = 10f64.powi(rng.random_range(-6..5));
    let mut m = random_spd::<N>(rng) * scale;
    match k % 9 {
        1 => {
            // Rank deficient: a zero column in the factor.
            let mut a = SMatrix::<f64, N, N>::from_fn(|_, _| rng.random_range(-1.0..1.0));
            a.set_column(rng.random_range(0..N), &SVector::<f64, N>::zeros());
            m = a * a.transpose() * scale;
        }
        2 => m = SMatrix::<f64, N, N>::from_fn(|_, _| rng.random_range(-1.0..1.0)) * scale,
        3 => {
            let (i, j) = (rng.random_range(0..N), rng.random_range(0..N));
            let bad = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e300, -0.0][rng.random_range(0..5)];
            m[(i, j)] = bad;
            if rng.random_bool(0.5) {
                m[(j, i)] = bad;
            }
        }
        4 => m[(rng.random_range(0..N), rng.random_range(0..N))] = rng.random_range(-1e-10..1e-10),
        5 => m = SMatrix::<f64, N, N>::from_diagonal(&m.diagonal()),
        _ => {}
    }
    m
}

/// A random motion state of any family for the equality tests.
fn awkward_state(rng: &mut impl rand::Rng, k: usize) -> MotionState {
    match k % 5 {
        0..=2 => {
            let w = match k % 4 {
                0 => 0.0,
                1 => rng.random_range(-2e-4..2e-4),
                _ => rng.random_range(-1.5..1.5),
            };
            let x = Vector5::new(
                rng.random_range(-100.0..100.0),
                rng.random_range(-100.0..100.0),
                rng.random_range(-4.0..4.0),
                rng.random_range(-30.0..30.0),
                w,
            );
            MotionState::Ctrv { x, p: awkward_cov::<5>(rng, k / 5) }
        }
        3 => {
            let x = SVector::<f64, 4>::from_fn(|_, _| rng.random_range(-50.0..50.0));
            MotionState::Cv { x, p: awkward_cov::<4>(rng, k / 5) }
        }
        _ => {
            let x = Vector2::from_fn(|_, _| rng.random_range(-50.0..50.0));
            MotionState::Static { x, p: awkward_cov::<2>(rng, k / 5) }
        }
    }
}

#[test]
fn guard_matches_the_reference_bit_for_bit() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
    for k in 0..20_000 {
        let m5 = awkward_cov::<5>(&mut rng, k);
        let (mut a, mut b) = (m5, m5);
        symmetrise(&mut a, Guard::Now);
        reference::repair_in_place(&mut b);
        assert!(same_bits(&a, &b), "{m5}");
        let (mut a, mut b) = (m5, m5);
        guard_covariance(&mut a);
        reference::guard_covariance(&mut b);
        assert!(same_bits(&a, &b), "{m5}");
        assert_eq!(is_positive_definite(&m5), reference::is_positive_definite(&m5), "{m5}");
        let m4 = awkward_cov::<4>(&mut rng, k);
        let (mut a, mut b) = (m4, m4);
        symmetrise(&mut a, Guard::Now);
        reference::repair_in_place(&mut b);
        assert!(same_bits(&a, &b), "{m4}");
    }
}

#[test]
fn predict_and_updates_match_the_reference_bit_for_bit() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(29);
    let mut checked = 0;
    for k in 0..20_000 {
        let mut s = awkward_state(&mut rng, k);
        let mut s_ref = s.clone();
        // A few steps on the same state, so later steps start from updated covariances.
        for step in 0..4 {
            let dt = match (k + step) % 11 {
                0 => 0.0,
                1 => -rng.random_range(0.0..0.5),
                2 => f64::NAN,
                _ => rng.random_range(1e-4..1.0),
            };
            let q = ProcessNoise {
                vehicle_accel_sigma_mps2: rng.random_range(0.0..4.0),
                vehicle_yaw_accel_sigma_rps2: rng.random_range(0.0..1.0),
                pedestrian_accel_sigma_mps2: rng.random_range(0.0..2.0),
                static_position_walk_mps: rng.random_range(0.0..0.1),
            };
            let hint = rng.random_range(-4.0..4.0);
            let kinematics_bits = |m: &Kinematics| {
                [m.position_m.x, m.position_m.y, m.velocity_mps.x, m.velocity_mps.y, m.yaw_rad].map(f64::to_bits)
            };
            assert_eq!(
                kinematics_bits(&s.kinematics_after(dt, hint)),
                kinematics_bits(&reference::kinematics_after(&s_ref, dt, hint)),
                "kinematics {k}/{step}: {s:?}"
            );
            s.predict(dt, &q);
            reference::predict(&mut s_ref, dt, &q);
            assert!(same_state(&s, &s_ref), "predict {k}/{step}: {s:?} vs {s_ref:?}");
            let r = awkward_cov::<2>(&mut rng, k + step);
            let z = Vector2::from_fn(|_, _| rng.random_range(-100.0..100.0));
            let yaw = rng.random_range(-4.0..4.0);
            let yaw_var = [rng.random_range(1e-6..1.0), 0.0, -1.0, f64::NAN][rng.random_range(0..4)];
            let ok = s.update_position_yaw(&z, &r, yaw, yaw_var);
            let ok_ref = reference::update_position_yaw(&mut s_ref, &z, &r, yaw, yaw_var);
            assert_eq!(ok, ok_ref);
            assert!(same_state(&s, &s_ref), "lidar {k}/{step}: {s:?} vs {s_ref:?}");
            let y = Vector2::from_fn(|_, _| rng.random_range(-20.0..20.0));
            let h = Matrix2::from_fn(|_, _| rng.random_range(-50.0..50.0));
            let r = awkward_cov::<2>(&mut rng, k + 2 * step);
            let ok = s.update_position_like(&y, &h, &r);
            let ok_ref = reference::update_position_like(&mut s_ref, &y, &h, &r);
            assert_eq!(ok, ok_ref);
            assert!(same_state(&s, &s_ref), "camera {k}/{step}: {s:?} vs {s_ref:?}");
            checked += usize::from(ok);
        }
    }
    // Most updates go through (the awkward cases are a minority).
    assert!(checked > 20_000, "{checked}");
}

fn noise() -> ProcessNoise {
    ProcessNoise {
        vehicle_accel_sigma_mps2: 2.0,
        vehicle_yaw_accel_sigma_rps2: 0.5,
        pedestrian_accel_sigma_mps2: 1.0,
        static_position_walk_mps: 0.02,
    }
}

#[test]
fn angles_wrap_and_pick_the_nearest_branch() {
    assert!((wrap_angle(3.0 * PI) - PI).abs() < 1e-12);
    assert!((wrap_angle(-0.5) + 0.5).abs() < 1e-12);
    assert!((nearest_branch(PI + 0.1, 0.0) - 0.1).abs() < 1e-12);
    assert!((nearest_branch(0.1, PI) - wrap_angle(PI + 0.1)).abs() < 1e-12);
    assert!((nearest_branch(0.2, 0.0) - 0.2).abs() < 1e-12);
}

#[test]
fn ctrv_turns_a_quarter_circle() {
    let r = 20.0;
    let v = 10.0;
    let w = v / r;
    let mut s = MotionState::Ctrv { x: Vector5::new(0.0, 0.0, 0.0, v, w), p: Matrix5::identity() * 0.01 };
    let quarter = (PI / 2.0) / w;
    for _ in 0..100 {
        s.predict(quarter / 100.0, &noise());
    }
    let pos = s.position();
    assert!((pos - Vector2::new(r, r)).norm() < 1e-9, "{pos:?}");
    assert!((s.yaw(0.0) - PI / 2.0).abs() < 1e-9);
}

/// The CTRV Jacobian by central differences of the state prediction.
fn numeric_ctrv_jacobian(x0: Vector5, dt: f64) -> Matrix5 {
    let f_of = |x: Vector5| {
        let mut s = MotionState::Ctrv { x, p: Matrix5::identity() };
        s.predict(dt, &noise());
        match s {
            MotionState::Ctrv { x, .. } => x,
            _ => unreachable!("stays ctrv"),
        }
    };
    let mut f_num = Matrix5::zeros();
    for j in 0..5 {
        let mut d = Vector5::zeros();
        d[j] = 1e-6;
        f_num.set_column(j, &((f_of(x0 + d) - f_of(x0 - d)) / 2e-6));
    }
    f_num
}

#[test]
fn ctrv_jacobian_matches_finite_differences() {
    let x0 = Vector5::new(1.0, 2.0, 0.7, 8.0, 0.3);
    let dt = 0.1;
    // Without process noise an identity covariance propagates to F Fᵀ; compare with numeric F.
    let mut s = MotionState::Ctrv { x: x0, p: Matrix5::identity() };
    let q0 = ProcessNoise { vehicle_accel_sigma_mps2: 0.0, vehicle_yaw_accel_sigma_rps2: 0.0, ..noise() };
    s.predict(dt, &q0);
    let MotionState::Ctrv { p, .. } = s else { unreachable!("ctrv") };
    let f_num = numeric_ctrv_jacobian(x0, dt);
    let expected = f_num * f_num.transpose();
    assert!((p - expected).norm() < 1e-6, "{p} vs {expected}");
}

#[test]
fn position_updates_shrink_uncertainty_and_converge() {
    let mut s = MotionState::new(MotionFamily::Pedestrian, Vector2::zeros(), Matrix2::identity(), 0.0, 2.0, 0.3);
    for k in 1..=30 {
        s.predict(0.1, &noise());
        let z = Vector2::new(1.5 * 0.1 * f64::from(k), 0.0);
        let y = z - s.position();
        assert!(s.update_position_like(&y, &Matrix2::identity(), &(Matrix2::identity() * 0.01)));
    }
    assert!((s.velocity() - Vector2::new(1.5, 0.0)).norm() < 0.2, "{:?}", s.velocity());
    assert!(s.position_cov()[(0, 0)] < 0.01);
}

#[test]
fn reversed_heading_is_flipped_not_driven_backwards() {
    let mut s = MotionState::new(MotionFamily::Vehicle, Vector2::zeros(), Matrix2::identity() * 0.04, PI, 8.0, 0.3);
    for k in 1..=20 {
        s.predict(0.1, &noise());
        let z = Vector2::new(10.0 * 0.1 * f64::from(k), 0.0);
        let yaw = nearest_branch(0.0, s.yaw(0.0));
        s.update_position_yaw(&z, &(Matrix2::identity() * 0.04), yaw, 0.01);
    }
    let (x, _) = s.as_ctrv(0.0, 0.3);
    assert!(x[3] > 8.0, "speed {}", x[3]);
    assert!(wrap_angle(x[2]).abs() < 0.2, "yaw {}", x[2]);
}

#[test]
fn positive_definite_check_agrees_with_nalgebra() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for k in 0..20_000 {
        let a = Matrix5::from_fn(|_, _| rng.random_range(-1.0..1.0));
        let mut m = a * a.transpose();
        // Some near-singular and indefinite matrices too.
        m[(k % 5, k % 5)] += rng.random_range(-0.5..0.5) * f64::from(k % 3 == 0);
        if k % 7 == 0 {
            m = Matrix5::from_fn(|i, j| if i == j { 0.0 } else { m[(i, j)] });
        }
        assert_eq!(is_positive_definite(&m), m.cholesky().is_some(), "{m}");
    }
    assert!(!is_positive_definite(&Matrix2::new(f64::NAN, 0.0, 0.0, 1.0)));
    assert!(!is_positive_definite(&Matrix2::new(0.0, 0.0, 0.0, 1.0)));
}

#[test]
fn positive_definite_check_rejects_non_finite_entries() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    for k in 0..20_000 {
        let mut m = random_spd::<5>(&mut rng);
        // Off the diagonal: `repair_covariance` clamps the diagonal before the check.
        let i = rng.random_range(0..5);
        let j = (i + rng.random_range(1..5)) % 5;
        let bad = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN][k % 3];
        m[(i, j)] = bad;
        m[(j, i)] = bad;
        assert!(!is_positive_definite(&m), "{m}");
        // What `repair_covariance` makes of it is finite.
        assert!(all_finite(repair_covariance(m).as_slice()), "{m}");
    }
}

/// The dense Joseph-form EKF update (the reference).
fn dense_update<const N: usize, const M: usize>(
    x: &mut SVector<f64, N>,
    p: &mut SMatrix<f64, N, N>,
    y: &SVector<f64, M>,
    h: &SMatrix<f64, M, N>,
    r: &SMatrix<f64, M, M>,
) {
    let ph_t = *p * h.transpose();
    let s_inv = (h * ph_t + r).try_inverse().expect("invertible");
    let k = ph_t * s_inv;
    *x += k * y;
    let i_kh = SMatrix::<f64, N, N>::identity() - k * h;
    *p = repair_covariance(i_kh * *p * i_kh.transpose() + k * r * k.transpose());
}

fn random_spd<const N: usize>(rng: &mut impl rand::Rng) -> SMatrix<f64, N, N> {
    let a = SMatrix::<f64, N, N>::from_fn(|_, _| rng.random_range(-1.0..1.0));
    a * a.transpose() + SMatrix::<f64, N, N>::identity() * 0.01
}

#[test]
fn ekf_update_matches_the_dense_joseph_form() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for _ in 0..2_000 {
        let (x0, p0) = (Vector5::from_fn(|_, _| rng.random_range(-5.0..5.0)), random_spd::<5>(&mut rng));
        // A 2×2 Jacobian block (camera) and the identity on three entries (lidar).
        let a = Matrix2::from_fn(|_, _| rng.random_range(-50.0..50.0));
        let (y2, r2) = (Vector2::from_fn(|_, _| rng.random_range(-3.0..3.0)), random_spd::<2>(&mut rng));
        let mut h2 = SMatrix::<f64, 2, 5>::zeros();
        h2.fixed_view_mut::<2, 2>(0, 0).copy_from(&a);
        let (y3, r3) = (SVector::<f64, 3>::from_fn(|_, _| rng.random_range(-3.0..3.0)), random_spd::<3>(&mut rng));
        let h3 = SMatrix::<f64, 3, 5>::identity();
        let (mut x, mut p, mut x_ref, mut p_ref) = (x0, p0, x0, p0);
        assert!(ekf_update_leading(&mut x, &mut p, &y2, Leading::Matrix(&a), &r2, Guard::Now));
        dense_update(&mut x_ref, &mut p_ref, &y2, &h2, &r2);
        assert!(ekf_update_leading(&mut x, &mut p, &y3, Leading::Identity, &r3, Guard::Now));
        dense_update(&mut x_ref, &mut p_ref, &y3, &h3, &r3);
        assert!((x - x_ref).norm() <= 1e-9 * (1.0 + x_ref.norm()), "{x} vs {x_ref}");
        assert!((p - p_ref).norm() <= 1e-9 * (1.0 + p_ref.norm()), "{p} vs {p_ref}");
    }
}

#[test]
fn a_deferred_guard_gives_the_guarded_result_when_the_guard_has_nothing_to_mend() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
    let q = noise();
    for k in 0..3_000 {
        // Settled states of every family (the guard is a no-op on them), then a batch: a
        // prediction, a lidar-like and a camera-like update.
        let family = [MotionFamily::Vehicle, MotionFamily::Pedestrian, MotionFamily::Static][k % 3];
        let pos = Vector2::from_fn(|_, _| rng.random_range(-50.0..50.0));
        let mut s = MotionState::new(family, pos, Matrix2::identity() * 0.04, rng.random_range(-3.0..3.0), 2.0, 0.3);
        for _ in 0..5 {
            s.predict(0.1, &q);
            let z = s.position() + Vector2::from_fn(|_, _| rng.random_range(-0.2..0.2));
            s.update_position_yaw(&z, &(Matrix2::identity() * 0.01), s.yaw(0.0), 0.01);
        }
        let (mut now, mut deferred) = (s.clone(), s);
        let dt = rng.random_range(0.01..0.2);
        let z = now.position() + Vector2::from_fn(|_, _| rng.random_range(-0.3..0.3));
        let (yaw, r) = (now.yaw(0.0) + rng.random_range(-0.1..0.1), Matrix2::identity() * 0.02);
        let y = Vector2::from_fn(|_, _| rng.random_range(-5.0..5.0));
        let hxy = Matrix2::from_fn(|_, _| rng.random_range(-40.0..40.0));
        let r_px = Matrix2::identity() * 9.0;
        now.predict(dt, &q);
        assert!(now.update_position_yaw(&z, &r, yaw, 0.01));
        assert!(now.update_position_like(&y, &hxy, &r_px));
        deferred.predict_with(dt, &q, Guard::Deferred);
        assert!(deferred.update_position_yaw_with(&z, &r, yaw, 0.01, Guard::Deferred));
        assert!(deferred.update_position_like_with(&y, &hxy, &r_px, Guard::Deferred));
        deferred.guard();
        assert!(same_state(&now, &deferred), "{now:?} vs {deferred:?}");
    }
}

#[test]
fn ctrv_covariance_propagation_matches_the_dense_product() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let q0 = ProcessNoise { vehicle_accel_sigma_mps2: 0.0, vehicle_yaw_accel_sigma_rps2: 0.0, ..noise() };
    for k in 0..200 {
        // Turning either way (the straight branch only fills the Jacobian differently: its
        // yaw-rate column is the turning model's limit, not the derivative of its own
        // prediction), away from the wrap of the heading, where the numeric Jacobian jumps.
        let w = if k % 2 == 0 { rng.random_range(0.05..0.5) } else { -rng.random_range(0.05..0.5) };
        let x0 = Vector5::new(1.0, -2.0, rng.random_range(-2.5..2.5), rng.random_range(0.0..20.0), w);
        let p0 = random_spd::<5>(&mut rng);
        let dt = rng.random_range(0.01..0.3);
        let f = numeric_ctrv_jacobian(x0, dt);
        let mut s = MotionState::Ctrv { x: x0, p: p0 };
        s.predict(dt, &q0);
        let MotionState::Ctrv { p, .. } = s else { unreachable!("ctrv") };
        let expected = repair_covariance(f * p0 * f.transpose());
        assert!((p - expected).norm() <= 1e-6 * (1.0 + expected.norm()), "{p} vs {expected}");
    }
}

#[test]
fn cv_covariance_propagation_matches_the_dense_product() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let q0 = ProcessNoise { pedestrian_accel_sigma_mps2: 0.0, ..noise() };
    let p0 = random_spd::<4>(&mut rng);
    let mut s = MotionState::Cv { x: SVector::<f64, 4>::new(1.0, 2.0, 0.5, -1.5), p: p0 };
    s.predict(0.2, &q0);
    let mut f = SMatrix::<f64, 4, 4>::identity();
    f[(0, 2)] = 0.2;
    f[(1, 3)] = 0.2;
    let MotionState::Cv { x, p } = s else { unreachable!("cv") };
    assert!((x - SVector::<f64, 4>::new(1.1, 1.7, 0.5, -1.5)).norm() < 1e-12);
    let expected = repair_covariance(f * p0 * f.transpose());
    assert!((p - expected).norm() <= 1e-12 * (1.0 + expected.norm()), "{p} vs {expected}");
}

#[test]
fn conversions_keep_the_motion() {
    let s = MotionState::Ctrv { x: Vector5::new(1.0, 2.0, 0.5, 3.0, 0.0), p: Matrix5::identity() * 0.1 };
    let cv = s.converted(MotionFamily::Pedestrian, 0.0, 1.0, 0.3);
    assert!((cv.velocity() - s.velocity()).norm() < 1e-12);
    let back = cv.converted(MotionFamily::Vehicle, 0.0, 1.0, 0.3);
    assert!((back.velocity() - s.velocity()).norm() < 1e-12);
    let (_, p) = back.as_ctrv(0.0, 0.3);
    assert!(p.cholesky().is_some());
}
