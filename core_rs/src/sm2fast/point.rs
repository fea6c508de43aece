//! Points of sm2p256v1, y² = x³ − 3x + b over GF(p): affine points for the
//! precomputed tables, Jacobian points (x = X/Z², y = Y/Z³) for accumulating.

use super::field::Fe;

/// Curve coefficient b, little-endian limbs.
const B: [u64; 4] = [0xddbc_bd41_4d94_0e93, 0xf397_89f5_15ab_8f92, 0x4d5a_9e4b_cf65_09a7, 0x28e9_fa9e_9d9f_5e34];

/// The base point G.
const GX: [u64; 4] = [0x715a_4589_334c_74c7, 0x8fe3_0bbf_f266_0be1, 0x5f99_0446_6a39_c994, 0x32c4_ae2c_1f19_8119];
const GY: [u64; 4] = [0x02df_32e5_2139_f0a0, 0xd0a9_877c_c62a_4740, 0x59bd_cee3_6b69_2153, 0xbc37_36a2_f4f6_779c];

/// A finite affine point. Aligned so that each table entry is exactly one
/// cache line: a lookup costs one line fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Affine {
    x: Fe,
    y: Fe,
}

impl Affine {
    pub(crate) fn generator() -> Affine {
        Affine { x: Fe::from_limbs_mod_p(GX), y: Fe::from_limbs_mod_p(GY) }
    }

    /// Parses big-endian coordinates, accepting only a point on the curve.
    /// The cofactor is 1, so every such point is in the group of order n;
    /// (0, 0) and other encodings of infinity fail the curve equation.
    pub(crate) fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Option<Affine> {
        let point = Affine { x: Fe::from_be_bytes(x)?, y: Fe::from_be_bytes(y)? };
        point.is_on_curve().then_some(point)
    }

    fn is_on_curve(&self) -> bool {
        let three = Fe::one().double().add(&Fe::one());
        let rhs = self.x.square().sub(&three).mul(&self.x).add(&Fe::from_limbs_mod_p(B));
        self.y.square() == rhs
    }

    pub(crate) fn neg(&self) -> Affine {
        Affine { x: self.x, y: self.y.neg() }
    }

    #[cfg(test)]
    pub(crate) fn to_sec1_uncompressed(self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 4;
        out[1..33].copy_from_slice(&self.x.to_be_bytes());
        out[33..].copy_from_slice(&self.y.to_be_bytes());
        out
    }
}

/// A point in Jacobian coordinates; Z = 0 is the point at infinity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Jacobian {
    pub(crate) fn infinity() -> Jacobian {
        Jacobian { x: Fe::one(), y: Fe::one(), z: Fe::ZERO }
    }

    pub(crate) fn from_affine(p: &Affine) -> Jacobian {
        Jacobian { x: p.x, y: p.y, z: Fe::one() }
    }

    pub(crate) fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// dbl-2001-b (3M + 5S), which uses a = −3 to get 3(X − Z²)(X + Z²).
    /// Infinity maps to infinity (Z3 = 2YZ = 0); there are no points of
    /// order 2 on a curve of prime order.
    pub(crate) fn double(&self) -> Jacobian {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma_sq8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma_sq8);
        Jacobian { x: x3, y: y3, z: z3 }
    }

    /// Mixed addition self + q, madd-2004-hmv (8M + 3S), with the exceptional
    /// cases (infinity, doubling, inverse points) handled by branches: every
    /// input is public, and they are rare enough not to cost a mispredict.
    pub(crate) fn add_affine(&self, q: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian::from_affine(q);
        }
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z.mul(&z1z1));
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.is_zero() {
            return if r.is_zero() { Jacobian::from_affine(q).double() } else { Jacobian::infinity() };
        }
        let hh = h.square();
        let hhh = hh.mul(&h);
        let v = self.x.mul(&hh);
        let x3 = r.square().sub(&hhh).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&hhh));
        Jacobian { x: x3, y: y3, z: self.z.mul(&h) }
    }

    /// A point with affine x-coordinate `x` written with the given Z (y is
    /// irrelevant to the x comparison and left at 0).
    #[cfg(test)]
    pub(crate) fn with_affine_x(x: &Fe, z: &Fe) -> Jacobian {
        Jacobian { x: x.mul(&z.square()), y: Fe::ZERO, z: *z }
    }

    /// Whether this point is finite with affine x equal to one of the
    /// candidates, tested as X == c·Z² so that no inversion is needed.
    pub(crate) fn affine_x_is_one_of(&self, candidates: &[Fe]) -> bool {
        if self.is_infinity() {
            return false;
        }
        let z2 = self.z.square();
        candidates.iter().any(|c| c.mul(&z2) == self.x)
    }
}

/// Converts to affine with a single inversion (Montgomery's trick).
/// Callers pass finite points only; infinity would come out as (0, 0).
pub(crate) fn batch_to_affine(points: &[Jacobian]) -> Vec<Affine> {
    // prefix[i] = Z_0 · … · Z_(i−1)
    let mut prefix = Vec::with_capacity(points.len());
    let mut product = Fe::one();
    for p in points {
        prefix.push(product);
        product = product.mul(&p.z);
    }
    let mut inv = product.invert();
    let mut out = vec![Affine { x: Fe::ZERO, y: Fe::ZERO }; points.len()];
    for ((p, before), slot) in points.iter().zip(prefix).zip(out.iter_mut()).rev() {
        let z_inv = inv.mul(&before);
        inv = inv.mul(&p.z);
        let z_inv2 = z_inv.square();
        *slot = Affine { x: p.x.mul(&z_inv2), y: p.y.mul(&z_inv2.mul(&z_inv)) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::elliptic_curve::sec1::ToSec1Point;
    use sm2::elliptic_curve::Group;
    use sm2::{AffinePoint, ProjectivePoint};

    fn reference_sec1(p: ProjectivePoint) -> Vec<u8> {
        AffinePoint::from(p).to_sec1_point(false).as_bytes().to_vec()
    }

    #[test]
    fn generator_matches_reference() {
        let g = Affine::generator();
        assert!(g.is_on_curve());
        assert_eq!(g.to_sec1_uncompressed().to_vec(), reference_sec1(ProjectivePoint::generator()));
    }

    #[test]
    fn group_law_matches_reference() {
        let g = Affine::generator();
        let ref_g = ProjectivePoint::generator();
        // Walk k·G for small k through both the mixed addition and doubling,
        // including the doubling and inverse special cases of add_affine.
        let mut ours = Vec::new();
        let mut acc = Jacobian::infinity();
        for _ in 0..40 {
            acc = acc.add_affine(&g);
            ours.push(acc);
        }
        ours.push(ours[19].double());
        ours.push(Jacobian::from_affine(&g).add_affine(&g));
        let affine = batch_to_affine(&ours);
        let mut expected = Vec::new();
        let mut r = ProjectivePoint::identity();
        for _ in 0..40 {
            r += ref_g;
            expected.push(reference_sec1(r));
        }
        expected.push(reference_sec1(ref_g * sm2::Scalar::from(40u64)));
        expected.push(reference_sec1(ref_g.double()));
        for (p, e) in affine.iter().zip(&expected) {
            assert!(p.is_on_curve());
            assert_eq!(&p.to_sec1_uncompressed().to_vec(), e);
        }
        assert!(Jacobian::from_affine(&g).add_affine(&g.neg()).is_infinity());
        assert!(Jacobian::infinity().double().is_infinity());
    }

    #[test]
    fn rejects_points_off_the_curve() {
        let g = Affine::generator().to_sec1_uncompressed();
        let coords =
            |b: &[u8; 65]| -> ([u8; 32], [u8; 32]) { (b[1..33].try_into().unwrap(), b[33..].try_into().unwrap()) };
        let (x, y) = coords(&g);
        assert!(Affine::from_coordinates(&x, &y).is_some());
        let mut y_bad = y;
        y_bad[31] ^= 1;
        assert!(Affine::from_coordinates(&x, &y_bad).is_none());
        assert!(Affine::from_coordinates(&[0; 32], &[0; 32]).is_none());
        assert!(Affine::from_coordinates(&[0xff; 32], &y).is_none());
    }
}
