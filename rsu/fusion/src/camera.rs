//! Camera geometry for fusion: projecting a track's predicted 3D box into the image (2D box,
//! bottom-centre pixel and its Jacobian by ground position) and back-projecting a 2D box's
//! bottom centre onto the ground model with a covariance propagated from the pixel noise.

use nalgebra::{
    Isometry3, Matrix2, Matrix2x3, Matrix3, Point2, Point3, Translation3, UnitQuaternion, Vector2, Vector3,
};

use crate::calibration::{CameraIntrinsics, GroundModel};
use crate::class::BoxSize;

/// A camera ready for fusion: intrinsics and both directions of its pose (fixed at
/// construction, so the derived rotation matrix stays consistent with them).
#[derive(Clone, Debug, PartialEq)]
pub struct CameraGeometry {
    /// Intrinsics with distortion.
    intrinsics: CameraIntrinsics,
    /// Site frame into camera frame.
    camera_from_world: Isometry3<f64>,
    /// Camera frame into site frame.
    world_from_camera: Isometry3<f64>,
    /// The rotation of `camera_from_world` as a matrix (9 products per point instead of the
    /// quaternion's ~30).
    camera_from_world_rot: Matrix3<f64>,
    /// Usable range [m].
    max_range_m: f64,
    /// The image width and height [px] as floats, for the image test of every projected box.
    image_size_px: (f64, f64),
}

/// `world_from_camera` for a camera at `position_m` (site frame) looking along the heading
/// `yaw_deg` (counter-clockwise from east), pitched down by `pitch_deg`, with no roll; camera axes
/// as in OpenCV (x right, y down, z forward).
pub fn camera_pose(position_m: (f64, f64, f64), yaw_deg: f64, pitch_deg: f64) -> Isometry3<f64> {
    let (yaw, pitch) = (yaw_deg.to_radians(), pitch_deg.to_radians());
    let forward = Vector3::new(yaw.cos() * pitch.cos(), yaw.sin() * pitch.cos(), -pitch.sin());
    let right = Vector3::new(yaw.sin(), -yaw.cos(), 0.0);
    let down = forward.cross(&right);
    let rotation = UnitQuaternion::from_matrix(&Matrix3::from_columns(&[right, down, forward]));
    Isometry3::from_parts(Translation3::new(position_m.0, position_m.1, position_m.2), rotation)
}

/// A 3D box projected into an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProjectedBox {
    /// Top-left of the enclosing 2D box [px].
    pub min_px: Point2<f64>,
    /// Bottom-right [px].
    pub max_px: Point2<f64>,
    /// Bottom-centre pixel `((min.x + max.x) / 2, max.y)` [px].
    pub bottom_center_px: Point2<f64>,
    /// Jacobian of the bottom-centre pixel by the box's ground position (x, y) [px/m]
    /// (pinhole, distortion neglected in the derivative).
    pub jacobian_px_per_m: Matrix2<f64>,
    /// Distance from the camera to the box centre [m].
    pub range_m: f64,
}

impl ProjectedBox {
    /// Intersection over union with a 2D box.
    pub fn iou(&self, min_px: &Point2<f64>, max_px: &Point2<f64>) -> f64 {
        let ix = (self.max_px.x.min(max_px.x) - self.min_px.x.max(min_px.x)).max(0.0);
        let iy = (self.max_px.y.min(max_px.y) - self.min_px.y.max(min_px.y)).max(0.0);
        let inter = ix * iy;
        let a = (self.max_px.x - self.min_px.x) * (self.max_px.y - self.min_px.y);
        let b = (max_px.x - min_px.x) * (max_px.y - min_px.y);
        let union = a + b - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// The eight corners of a box standing on the ground at `center_xy` [m] (ground height
/// `z_ground_m`), heading `yaw_rad`.
pub fn box_corners(center_xy: &Vector2<f64>, z_ground_m: f64, yaw_rad: f64, size: &BoxSize) -> [Point3<f64>; 8] {
    let (s, c) = yaw_rad.sin_cos();
    let (hl, hw) = (0.5 * size.length_m, 0.5 * size.width_m);
    let mut out = [Point3::origin(); 8];
    let mut k = 0;
    for (dl, dw) in [(hl, hw), (hl, -hw), (-hl, -hw), (-hl, hw)] {
        let x = center_xy.x + c * dl - s * dw;
        let y = center_xy.y + s * dl + c * dw;
        out[k] = Point3::new(x, y, z_ground_m);
        out[k + 1] = Point3::new(x, y, z_ground_m + size.height_m);
        k += 2;
    }
    out
}

impl CameraGeometry {
    /// The geometry of a camera with `intrinsics` at pose `world_from_camera`.
    pub fn new(intrinsics: CameraIntrinsics, world_from_camera: Isometry3<f64>, max_range_m: f64) -> Self {
        let camera_from_world = world_from_camera.inverse();
        CameraGeometry {
            image_size_px: (f64::from(intrinsics.width_px), f64::from(intrinsics.height_px)),
            intrinsics,
            camera_from_world,
            world_from_camera,
            camera_from_world_rot: *camera_from_world.rotation.to_rotation_matrix().matrix(),
            max_range_m,
        }
    }

    /// Intrinsics with distortion.
    pub fn intrinsics(&self) -> &CameraIntrinsics {
        &self.intrinsics
    }

    /// Site frame into camera frame.
    pub fn camera_from_world(&self) -> &Isometry3<f64> {
        &self.camera_from_world
    }

    /// Camera frame into site frame.
    pub fn world_from_camera(&self) -> &Isometry3<f64> {
        &self.world_from_camera
    }

    /// Usable range [m].
    pub fn max_range_m(&self) -> f64 {
        self.max_range_m
    }

    /// Projects a box standing on the ground; `None` when any corner is behind (or almost at)
    /// the camera, the box is beyond range, or it lies wholly outside the image.
    pub fn project_box(
        &self,
        center_xy: &Vector2<f64>,
        z_ground_m: f64,
        yaw_rad: f64,
        size: &BoxSize,
    ) -> Option<ProjectedBox> {
        // The rotation as a matrix: 9 products per point instead of the quaternion's ~30.
        let rot = &self.camera_from_world_rot;
        let t = &self.camera_from_world.translation.vector;
        let half_h = 0.5 * size.height_m;
        let centre_cam = Point3::new(
            rot[(0, 0)] * center_xy.x + rot[(0, 1)] * center_xy.y + rot[(0, 2)] * (z_ground_m + half_h) + t.x,
            rot[(1, 0)] * center_xy.x + rot[(1, 1)] * center_xy.y + rot[(1, 2)] * (z_ground_m + half_h) + t.y,
            rot[(2, 0)] * center_xy.x + rot[(2, 1)] * center_xy.y + rot[(2, 2)] * (z_ground_m + half_h) + t.z,
        );
        let range_m = centre_cam.coords.norm();
        if range_m.is_nan() || range_m > self.max_range_m || centre_cam.z <= 0.5 {
            return None;
        }
        let intr = &self.intrinsics;
        let r_xy = rot.fixed_view::<3, 2>(0, 0).into_owned();
        // The box's axes in the camera frame: the corners are the bottom centre plus or minus
        // half the length along the heading and half the width across it, the top corners
        // the height above them (the corners of `box_corners`, in its order).
        let (s, c) = yaw_rad.sin_cos();
        let (x_axis, y_axis, up) = (rot.column(0), rot.column(1), rot.column(2));
        let along = (x_axis * c + y_axis * s) * (0.5 * size.length_m);
        let across = (y_axis * c - x_axis * s) * (0.5 * size.width_m);
        let up = up * size.height_m;
        let bottom = centre_cam.coords - up * 0.5;
        // The corners in camera coordinates: (x, y) pairs and z apart, so that the projection
        // below runs the same operations on every corner (vectorised over corners, each
        // corner's arithmetic that of `CameraIntrinsics::project`).
        let (mut xys, mut zs) = ([[0.0; 2]; 8], [0.0; 8]);
        for (k, (dl, dw)) in [(1.0, 1.0), (1.0, -1.0), (-1.0, -1.0), (-1.0, 1.0)].into_iter().enumerate() {
            let low = bottom + along * dl + across * dw;
            let high = low + up;
            for (i, p) in [(2 * k, low), (2 * k + 1, high)] {
                (xys[i], zs[i]) = ([p.x, p.y], p.z);
            }
        }
        // Any corner behind (or almost at) the camera: nothing. Past this, every corner is in
        // front of the camera as `CameraIntrinsics::project` requires.
        if zs.iter().any(|&z| z <= 0.3) {
            return None;
        }
        let (mut us, mut vs) = ([0.0; 8], [0.0; 8]);
        for i in 0..8 {
            let inv_z = 1.0 / zs[i];
            let d = intr.distort(Vector2::new(xys[i][0] * inv_z, xys[i][1] * inv_z));
            (us[i], vs[i]) = (intr.fx * d.x + intr.cx, intr.fy * d.y + intr.cy);
        }
        // The first corner with the least u, the first with the greatest u and the first with
        // the greatest v, as selections rather than branches.
        let (mut i_umin, mut i_umax, mut i_vmax) = (0, 0, 0);
        let (mut u_min, mut u_max, mut v_max) = (us[0], us[0], vs[0]);
        let mut min_v = f64::INFINITY.min(vs[0]);
        for i in 1..8 {
            let (u, v) = (us[i], vs[i]);
            (i_umin, u_min) = if u < u_min { (i, u) } else { (i_umin, u_min) };
            (i_umax, u_max) = if u > u_max { (i, u) } else { (i_umax, u_max) };
            (i_vmax, v_max) = if v > v_max { (i, v) } else { (i_vmax, v_max) };
            min_v = min_v.min(v);
        }
        // Read back through the indices: the image test below then needs them, so that they are
        // chosen while the running extremes are still at hand.
        let min_px = Point2::new(us[i_umin], min_v);
        let max_px = Point2::new(us[i_umax], vs[i_vmax]);
        let cam = |i: usize| Point3::new(xys[i][0], xys[i][1], zs[i]);
        let (w, h) = self.image_size_px;
        // One test of all four sides (no early outs): u and v are then projected together.
        if (max_px.x < 0.0) | (min_px.x > w) | (max_px.y < 0.0) | (min_px.y > h) {
            return None;
        }
        let jac = |p: &Point3<f64>| -> Matrix2x3<f64> {
            let iz = 1.0 / p.z;
            Matrix2x3::new(intr.fx * iz, 0.0, -intr.fx * p.x * iz * iz, 0.0, intr.fy * iz, -intr.fy * p.y * iz * iz)
        };
        let ju = (jac(&cam(i_umin)).row(0) + jac(&cam(i_umax)).row(0)) * 0.5 * r_xy;
        let jv = jac(&cam(i_vmax)).row(1) * r_xy;
        let jacobian_px_per_m = Matrix2::new(ju[0], ju[1], jv[0], jv[1]);
        Some(ProjectedBox {
            min_px,
            max_px,
            bottom_center_px: Point2::new(0.5 * (min_px.x + max_px.x), max_px.y),
            jacobian_px_per_m,
            range_m,
        })
    }

    /// Where the ray through `pixel` meets the ground [m], site frame; `None` when it does not
    /// point down to the ground within range.
    pub fn ground_point(&self, pixel: &Point2<f64>, ground: &GroundModel) -> Option<Point3<f64>> {
        let dir: Vector3<f64> = self.world_from_camera.rotation * self.intrinsics.ray(pixel);
        let origin = self.world_from_camera.translation.vector;
        if dir.z >= -1e-3 {
            return None;
        }
        // The ground height depends on where the ray lands: two fixed-point passes.
        let mut h = ground.height_at(origin.x, origin.y);
        let mut p = origin;
        for _ in 0..3 {
            let t = (h - origin.z) / dir.z;
            if !(t > 0.0 && t <= self.max_range_m) {
                return None;
            }
            p = origin + dir * t;
            h = ground.height_at(p.x, p.y);
        }
        Some(Point3::new(p.x, p.y, h))
    }

    /// Back-projects a pixel to the ground with the covariance [m²] of the ground point for an
    /// isotropic pixel noise `pixel_sigma_px` (1 sigma), propagated through the numerically
    /// differentiated ground intersection: grows with the square of range.
    pub fn back_project(
        &self,
        pixel: &Point2<f64>,
        ground: &GroundModel,
        pixel_sigma_px: f64,
    ) -> Option<(Point3<f64>, Matrix2<f64>)> {
        let p = self.ground_point(pixel, ground)?;
        let du = self.ground_point(&Point2::new(pixel.x + 1.0, pixel.y), ground)?;
        let dv = self.ground_point(&Point2::new(pixel.x, pixel.y - 1.0), ground)?;
        // Columns: metres per pixel along u and along v (v measured upwards by the minus sign).
        let j = Matrix2::new(du.x - p.x, -(dv.x - p.x), du.y - p.y, -(dv.y - p.y));
        let cov = j * j.transpose() * pixel_sigma_px.powi(2) + Matrix2::identity() * 1e-4;
        cov.iter().all(|v| v.is_finite()).then_some((p, cov))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera 6 m up at the origin looking east, pitched 15° down.
    pub(crate) fn camera() -> CameraGeometry {
        let intr = CameraIntrinsics {
            width_px: 1920,
            height_px: 1080,
            fx: 1400.0,
            fy: 1400.0,
            cx: 960.0,
            cy: 540.0,
            distortion: [-0.05, 0.01, 0.0, 0.0, 0.0],
        };
        CameraGeometry::new(intr, camera_pose((0.0, 0.0, 6.0), 0.0, 15.0), 150.0)
    }

    /// The implementation of [`CameraGeometry::project_box`] before it projected the corners
    /// as arrays and picked the extreme corners by selection, kept as the reference that the
    /// current one must match bit for bit.
    fn project_box_reference(
        geo: &CameraGeometry,
        center_xy: &Vector2<f64>,
        z_ground_m: f64,
        yaw_rad: f64,
        size: &BoxSize,
    ) -> Option<ProjectedBox> {
        let rot = &geo.camera_from_world_rot;
        let t = &geo.camera_from_world.translation.vector;
        let half_h = 0.5 * size.height_m;
        let centre_cam = Point3::new(
            rot[(0, 0)] * center_xy.x + rot[(0, 1)] * center_xy.y + rot[(0, 2)] * (z_ground_m + half_h) + t.x,
            rot[(1, 0)] * center_xy.x + rot[(1, 1)] * center_xy.y + rot[(1, 2)] * (z_ground_m + half_h) + t.y,
            rot[(2, 0)] * center_xy.x + rot[(2, 1)] * center_xy.y + rot[(2, 2)] * (z_ground_m + half_h) + t.z,
        );
        let range_m = centre_cam.coords.norm();
        if range_m.is_nan() || range_m > geo.max_range_m || centre_cam.z <= 0.5 {
            return None;
        }
        let intr = &geo.intrinsics;
        let r_xy = rot.fixed_view::<3, 2>(0, 0).into_owned();
        let (s, c) = yaw_rad.sin_cos();
        let (x_axis, y_axis, up) = (rot.column(0), rot.column(1), rot.column(2));
        let along = (x_axis * c + y_axis * s) * (0.5 * size.length_m);
        let across = (y_axis * c - x_axis * s) * (0.5 * size.width_m);
        let up = up * size.height_m;
        let bottom = centre_cam.coords - up * 0.5;
        let mut px = [Point2::origin(); 8];
        let mut cam = [Point3::origin(); 8];
        for (k, (dl, dw)) in [(1.0, 1.0), (1.0, -1.0), (-1.0, -1.0), (-1.0, 1.0)].into_iter().enumerate() {
            let low = Point3::from(bottom + along * dl + across * dw);
            let high = low + up;
            for (i, p) in [(2 * k, low), (2 * k + 1, high)] {
                if p.z <= 0.3 {
                    return None;
                }
                px[i] = intr.project(&p)?;
                cam[i] = p;
            }
        }
        let (mut i_umin, mut i_umax, mut i_vmax) = (0, 0, 0);
        let mut min_v = f64::INFINITY;
        for i in 1..8 {
            if px[i].x < px[i_umin].x {
                i_umin = i;
            }
            if px[i].x > px[i_umax].x {
                i_umax = i;
            }
            if px[i].y > px[i_vmax].y {
                i_vmax = i;
            }
        }
        for p in &px {
            min_v = min_v.min(p.y);
        }
        let min_px = Point2::new(px[i_umin].x, min_v);
        let max_px = Point2::new(px[i_umax].x, px[i_vmax].y);
        let (w, h) = (f64::from(intr.width_px), f64::from(intr.height_px));
        if max_px.x < 0.0 || min_px.x > w || max_px.y < 0.0 || min_px.y > h {
            return None;
        }
        let jac = |p: &Point3<f64>| -> Matrix2x3<f64> {
            let iz = 1.0 / p.z;
            Matrix2x3::new(intr.fx * iz, 0.0, -intr.fx * p.x * iz * iz, 0.0, intr.fy * iz, -intr.fy * p.y * iz * iz)
        };
        let ju = (jac(&cam[i_umin]).row(0) + jac(&cam[i_umax]).row(0)) * 0.5 * r_xy;
        let jv = jac(&cam[i_vmax]).row(1) * r_xy;
        let jacobian_px_per_m = Matrix2::new(ju[0], ju[1], jv[0], jv[1]);
        Some(ProjectedBox {
            min_px,
            max_px,
            bottom_center_px: Point2::new(0.5 * (min_px.x + max_px.x), max_px.y),
            jacobian_px_per_m,
            range_m,
        })
    }

    /// The bit patterns of every field of a projection (so that signed zeros and NaNs compare
    /// exactly too).
    fn projection_bits(b: &Option<ProjectedBox>) -> Option<[u64; 11]> {
        b.map(|b| {
            let j = &b.jacobian_px_per_m;
            [
                b.min_px.x,
                b.min_px.y,
                b.max_px.x,
                b.max_px.y,
                b.bottom_center_px.x,
                b.bottom_center_px.y,
                j[(0, 0)],
                j[(0, 1)],
                j[(1, 0)],
                j[(1, 1)],
                b.range_m,
            ]
            .map(f64::to_bits)
        })
    }

    #[test]
    fn project_box_matches_the_reference_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // How often each outcome came up, to show that the random cases cover them all.
        let (mut behind, mut outside, mut straddling, mut inside, mut ties, mut other_none) = (0, 0, 0, 0, 0, 0);
        for camera_no in 0..300 {
            let width_px = rng.random_range(320..4096);
            let height_px = rng.random_range(240..3072);
            let fx = rng.random_range(300.0..4000.0);
            let distortion = if camera_no % 3 == 0 {
                [0.0; 5]
            } else {
                [
                    rng.random_range(-0.4..0.4),
                    rng.random_range(-0.2..0.2),
                    rng.random_range(-0.01..0.01),
                    rng.random_range(-0.01..0.01),
                    if camera_no % 3 == 1 { 0.0 } else { rng.random_range(-0.05..0.05) },
                ]
            };
            let intr = CameraIntrinsics {
                width_px,
                height_px,
                fx,
                fy: fx * rng.random_range(0.9..1.1),
                cx: f64::from(width_px) * rng.random_range(0.4..0.6),
                cy: f64::from(height_px) * rng.random_range(0.4..0.6),
                distortion,
            };
            let position = (rng.random_range(-50.0..50.0), rng.random_range(-50.0..50.0), rng.random_range(1.0..15.0));
            // Level cameras looking along an axis give exactly repeated pixel coordinates
            // between corners (ties in the extreme-corner choice); others any pose, some rolled.
            let pose = match camera_no % 4 {
                0 => camera_pose(position, f64::from(rng.random_range(0..4)) * 90.0, 0.0),
                1 => camera_pose(position, rng.random_range(-180.0..180.0), rng.random_range(-10.0..60.0)),
                _ => Isometry3::from_parts(
                    Translation3::new(position.0, position.1, position.2),
                    UnitQuaternion::from_euler_angles(
                        rng.random_range(-3.2..3.2),
                        rng.random_range(-3.2..3.2),
                        rng.random_range(-3.2..3.2),
                    ),
                ),
            };
            let geo = CameraGeometry::new(intr, pose, rng.random_range(20.0..200.0));
            let cam_xy = pose.translation.vector.xy();
            for box_no in 0..400 {
                let centre = cam_xy + Vector2::new(rng.random_range(-120.0..120.0), rng.random_range(-120.0..120.0));
                let size = match box_no % 10 {
                    // Degenerate boxes: every corner alike, or flat.
                    0 => BoxSize::new(0.0, 0.0, 0.0),
                    1 => BoxSize::new(rng.random_range(0.0..20.0), rng.random_range(0.0..5.0), 0.0),
                    _ => BoxSize::new(
                        rng.random_range(0.2..20.0),
                        rng.random_range(0.2..5.0),
                        rng.random_range(0.2..5.0),
                    ),
                };
                let yaw = if box_no % 7 == 0 {
                    f64::from(rng.random_range(-2..=2)) * std::f64::consts::FRAC_PI_2
                } else {
                    rng.random_range(-4.0..4.0)
                };
                let z_ground = if box_no % 5 == 0 { 0.0 } else { rng.random_range(-3.0..3.0) };
                let got = geo.project_box(&centre, z_ground, yaw, &size);
                let want = project_box_reference(&geo, &centre, z_ground, yaw, &size);
                assert_eq!(projection_bits(&got), projection_bits(&want), "camera {camera_no}, box {box_no}");
                assert_eq!(got, want, "camera {camera_no}, box {box_no}");
                let corners = box_corners(&centre, z_ground, yaw, &size)
                    .map(|p| geo.camera_from_world.transform_point(&p).coords);
                match want {
                    Some(b) => {
                        let (w, h) = (f64::from(width_px), f64::from(height_px));
                        if b.min_px.x < 0.0 || b.min_px.y < 0.0 || b.max_px.x > w || b.max_px.y > h {
                            straddling += 1;
                        } else {
                            inside += 1;
                        }
                        let px: Vec<_> = corners
                            .iter()
                            .map(|p| geo.intrinsics.project(&Point3::from(*p)).expect("in front"))
                            .collect();
                        if px.iter().filter(|p| p.x == b.min_px.x).count() > 1 {
                            ties += 1;
                        }
                    }
                    None if corners.iter().any(|p| p.z <= 0.3) => behind += 1,
                    None if corners.iter().all(|p| p.z > 0.3) && (centre - cam_xy).norm() < geo.max_range_m - 10.0 => {
                        outside += 1
                    }
                    None => other_none += 1,
                }
            }
        }
        for (what, n) in [
            ("behind", behind),
            ("outside", outside),
            ("straddling", straddling),
            ("inside", inside),
            ("ties", ties),
            ("other none", other_none),
        ] {
            assert!(n > 200, "{what}: {n}");
        }
    }

    #[test]
    fn ground_back_projection_inverts_projection() {
        let cam = camera();
        let ground = GroundModel::flat(0.0);
        for target in [Point3::new(20.0, 0.0, 0.0), Point3::new(40.0, -5.0, 0.0), Point3::new(70.0, 8.0, 0.0)] {
            let px = cam.intrinsics.project(&cam.camera_from_world.transform_point(&target)).expect("visible");
            let (p, cov) = cam.back_project(&px, &ground, 4.0).expect("hits ground");
            assert!((p - target).norm() < 1e-6, "{p:?} vs {target:?}");
            assert!(cov.cholesky().is_some());
        }
        // Farther points are less certain.
        let near = cam.back_project(&Point2::new(960.0, 900.0), &ground, 4.0).expect("near").1;
        let far = cam.back_project(&Point2::new(960.0, 600.0), &ground, 4.0).expect("far").1;
        assert!(far.trace() > 4.0 * near.trace());
        // The sky does not hit the ground.
        assert!(cam.back_project(&Point2::new(960.0, 10.0), &ground, 4.0).is_none());
    }

    #[test]
    fn projected_box_encloses_the_projected_corners() {
        let cam = camera();
        for (c, z, yaw, size) in [
            (Vector2::new(30.0, 3.0), 0.0, 0.4, BoxSize::new(4.6, 1.85, 1.5)),
            (Vector2::new(18.0, -6.0), 0.3, -2.5, BoxSize::new(12.0, 2.5, 3.4)),
            (Vector2::new(60.0, 10.0), -0.2, 3.1, BoxSize::new(0.6, 0.6, 1.7)),
        ] {
            let b = cam.project_box(&c, z, yaw, &size).expect("visible");
            let (mut min, mut max) =
                (Point2::new(f64::INFINITY, f64::INFINITY), Point2::new(f64::NEG_INFINITY, f64::NEG_INFINITY));
            for corner in box_corners(&c, z, yaw, &size) {
                let px = cam.intrinsics.project(&cam.camera_from_world.transform_point(&corner)).expect("in front");
                min = Point2::new(min.x.min(px.x), min.y.min(px.y));
                max = Point2::new(max.x.max(px.x), max.y.max(px.y));
            }
            assert!((b.min_px - min).norm() < 1e-9 && (b.max_px - max).norm() < 1e-9, "{b:?} vs {min} {max}");
            assert!((b.bottom_center_px - Point2::new(0.5 * (min.x + max.x), max.y)).norm() < 1e-9);
        }
    }

    #[test]
    fn projected_box_jacobian_matches_finite_differences() {
        let cam = camera();
        let size = BoxSize::new(4.6, 1.85, 1.5);
        let c = Vector2::new(30.0, 3.0);
        let b = cam.project_box(&c, 0.0, 0.4, &size).expect("visible");
        assert!(b.min_px.x < b.bottom_center_px.x && b.bottom_center_px.x < b.max_px.x);
        let eps = 1e-3;
        for k in 0..2 {
            let mut d = Vector2::zeros();
            d[k] = eps;
            let plus = cam.project_box(&(c + d), 0.0, 0.4, &size).expect("visible").bottom_center_px;
            let minus = cam.project_box(&(c - d), 0.0, 0.4, &size).expect("visible").bottom_center_px;
            let num = (plus - minus) / (2.0 * eps);
            let ana = b.jacobian_px_per_m.column(k);
            assert!((num - ana).norm() < 0.05 * num.norm().max(1.0), "col {k}: {num:?} vs {ana:?}");
        }
        assert!(b.iou(&b.min_px, &b.max_px) > 0.999);
        // Behind the camera: nothing.
        assert!(cam.project_box(&Vector2::new(-20.0, 0.0), 0.0, 0.0, &size).is_none());
    }
}
