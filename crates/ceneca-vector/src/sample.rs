//! Generated embeddings for recall tests and benchmarks.
//!
//! Real embeddings are not uniform on the sphere: they cluster by topic and live near a
//! low-dimensional subspace. [`clustered`] imitates that (random centres, points spread
//! around them); [`uniform`] is the worst case every HNSW struggles with, reported beside
//! it because it hides nothing.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller: enough for test data, no extra dependency.
    let (u1, u2): (f32, f32) = (rng.r#gen::<f32>().max(f32::MIN_POSITIVE), rng.r#gen());
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// `n` vectors of `dims` dimensions around `clusters` random centres; `spread` is the
/// noise relative to a centre (0.3–0.6 looks like sentence embeddings).
pub fn clustered(n: usize, dims: usize, clusters: usize, spread: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| (0..dims).map(|_| gaussian(&mut rng)).collect())
        .collect();
    let noise = spread;
    (0..n)
        .map(|_| {
            let centre = &centres[rng.gen_range(0..centres.len())];
            centre
                .iter()
                .map(|c| c + noise * gaussian(&mut rng))
                .collect()
        })
        .collect()
}

/// `n` vectors uniformly distributed in direction: the adversarial case.
pub fn uniform(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dims).map(|_| gaussian(&mut rng)).collect())
        .collect()
}
