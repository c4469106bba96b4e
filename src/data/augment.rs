//! Training-time augmentation of 28×28 digits (the S1 recipe): a random affine map (rotation,
//! translation, scale, shear; bilinear sampling, zero fill), a 3×3 Gaussian blur with a random
//! sigma, and an elastic distortion (a uniform random displacement field smoothed by a Gaussian
//! of `elastic_sigma`, scaled as torchvision's ElasticTransform does). Runs on the CPU, per
//! image, from the trial's own generator.

use crate::config::Augment;
use rand::Rng;

const SIDE: usize = 28;

fn sample(img: &[f32], x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let px = |xi: i32, yi: i32| -> f32 {
        if xi < 0 || yi < 0 || xi >= SIDE as i32 || yi >= SIDE as i32 {
            0.0
        } else {
            img[yi as usize * SIDE + xi as usize]
        }
    };
    let (xi, yi) = (x0 as i32, y0 as i32);
    px(xi, yi) * (1.0 - fx) * (1.0 - fy)
        + px(xi + 1, yi) * fx * (1.0 - fy)
        + px(xi, yi + 1) * (1.0 - fx) * fy
        + px(xi + 1, yi + 1) * fx * fy
}

fn gaussian_kernel(sigma: f32, radius: usize) -> Vec<f32> {
    let k: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let d = i as f32 - radius as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let s: f32 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// Separable Gaussian smoothing with zero padding.
fn smooth(img: &[f32], kernel: &[f32]) -> Vec<f32> {
    let r = kernel.len() / 2;
    let mut tmp = vec![0.0; SIDE * SIDE];
    let mut out = vec![0.0; SIDE * SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let mut acc = 0.0;
            for (k, w) in kernel.iter().enumerate() {
                let xx = x as i32 + k as i32 - r as i32;
                if (0..SIDE as i32).contains(&xx) {
                    acc += w * img[y * SIDE + xx as usize];
                }
            }
            tmp[y * SIDE + x] = acc;
        }
    }
    for y in 0..SIDE {
        for x in 0..SIDE {
            let mut acc = 0.0;
            for (k, w) in kernel.iter().enumerate() {
                let yy = y as i32 + k as i32 - r as i32;
                if (0..SIDE as i32).contains(&yy) {
                    acc += w * tmp[yy as usize * SIDE + x];
                }
            }
            out[y * SIDE + x] = acc;
        }
    }
    out
}

/// Augments one raw image into `out` (normalised with mean/std).
pub fn augment_into(
    raw: &[u8],
    a: &Augment,
    mean: f32,
    std: f32,
    rng: &mut impl Rng,
    out: &mut Vec<f32>,
) {
    let img: Vec<f32> = raw.iter().map(|&p| f32::from(p) / 255.0).collect();
    let mut uni = |lo: f64, hi: f64| -> f32 {
        if hi > lo {
            rng.random_range(lo..hi) as f32
        } else {
            lo as f32
        }
    };
    // Affine: output pixel p maps back to the source by the inverse of T·R·Shear·S about the centre.
    let angle = uni(-a.rotate, a.rotate).to_radians();
    let max_t = a.translate * SIDE as f64;
    let (tx, ty) = (uni(-max_t, max_t).round(), uni(-max_t, max_t).round());
    let scale = uni(a.scale[0], a.scale[1]);
    let shear = uni(-a.shear, a.shear).to_radians();
    // Forward matrix M = R(angle) · Shx(shear) · scale; invert the 2×2 part.
    let (c, s) = (angle.cos(), angle.sin());
    let sh = shear.tan();
    let m = [
        c * scale,
        (c * sh - s) * scale,
        s * scale,
        (s * sh + c) * scale,
    ];
    let det = m[0] * m[3] - m[1] * m[2];
    let inv = [m[3] / det, -m[1] / det, -m[2] / det, m[0] / det];
    let centre = (SIDE as f32 - 1.0) / 2.0;
    let mut img2 = vec![0.0; SIDE * SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let dx = x as f32 - centre - tx;
            let dy = y as f32 - centre - ty;
            let sx = inv[0] * dx + inv[1] * dy + centre;
            let sy = inv[2] * dx + inv[3] * dy + centre;
            img2[y * SIDE + x] = sample(&img, sx, sy);
        }
    }
    let mut img = img2;
    if a.blur_sigma[1] > 0.0 {
        let sigma = uni(a.blur_sigma[0], a.blur_sigma[1]).max(1e-3);
        img = smooth(&img, &gaussian_kernel(sigma, 1));
    }
    if a.elastic_alpha > 0.0 {
        let sigma = a.elastic_sigma as f32;
        let radius = ((4.0 * sigma) as usize).max(1);
        let kernel = gaussian_kernel(sigma, radius);
        let noise: Vec<f32> = (0..2 * SIDE * SIDE).map(|_| uni(-1.0, 1.0)).collect();
        let dx = smooth(&noise[..SIDE * SIDE], &kernel);
        let dy = smooth(&noise[SIDE * SIDE..], &kernel);
        // torchvision: displacement (in [-1, 1] grid units) = smooth · alpha / size, i.e.
        // smooth · alpha / 2 pixels.
        let k = a.elastic_alpha as f32 / 2.0;
        let mut img3 = vec![0.0; SIDE * SIDE];
        for y in 0..SIDE {
            for x in 0..SIDE {
                let i = y * SIDE + x;
                img3[i] = sample(&img, x as f32 + k * dx[i], y as f32 + k * dy[i]);
            }
        }
        img = img3;
    }
    out.extend(img.iter().map(|v| (v - mean) / std));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn identity_settings_keep_the_image() {
        let raw: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
        let a = Augment {
            enabled: true,
            rotate: 0.0,
            translate: 0.0,
            scale: [1.0, 1.0],
            shear: 0.0,
            blur_sigma: [0.0, 0.0],
            elastic_alpha: 0.0,
            elastic_sigma: 5.0,
        };
        let mut out = vec![];
        augment_into(
            &raw,
            &a,
            0.0,
            1.0,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
            &mut out,
        );
        for (o, r) in out.iter().zip(&raw) {
            assert!((o - f32::from(*r) / 255.0).abs() < 1e-5);
        }
    }

    #[test]
    fn default_augmentation_moves_ink_but_keeps_most_of_it() {
        let mut raw = vec![0u8; 784];
        for y in 8..20 {
            for x in 12..16 {
                raw[y * 28 + x] = 255;
            }
        }
        let a = Augment {
            enabled: true,
            ..Default::default()
        };
        let mut out = vec![];
        augment_into(
            &raw,
            &a,
            0.0,
            1.0,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(3),
            &mut out,
        );
        let ink: f32 = out.iter().sum();
        let changed = out
            .iter()
            .zip(&raw)
            .filter(|(o, r)| (**o - f32::from(**r) / 255.0).abs() > 0.1)
            .count();
        assert!((30.0..70.0).contains(&ink), "ink {ink}");
        assert!(changed > 5, "augmentation changed only {changed} pixels");
    }
}
