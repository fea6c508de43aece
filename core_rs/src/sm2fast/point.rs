//! Points of sm2p256v1, y² = x³ − 3x + b over GF(p): affine points for the
//! precomputed tables, Jacobian points (x = X/Z², y = Y/Z³) for accumulating
//! public multiples (verification), and homogeneous projective points
//! (x = X/Z, y = Y/Z) with complete, branch-free addition for secret
//! multiples (signing).

use super::field::Fe;

/// Curve coefficient b, little-endian limbs.
const B: [u64; 4] = [0xddbc_bd41_4d94_0e93, 0xf397_89f5_15ab_8f92, 0x4d5a_9e4b_cf65_09a7, 0x28e9_fa9e_9d9f_5e34];

/// b in Montgomery form (b·2^256 mod p), raw limbs; checked against `B` in the tests.
const B_MONTGOMERY: [u64; 4] =
    [0x90d2_3063_2bc0_dd42, 0x71cf_379a_e9b5_37ab, 0x5279_8150_5ea5_1c3c, 0x240f_e188_ba20_e2c8];

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

    /// Raw limbs (x then y, Montgomery form), for constant-time table scans.
    #[inline(always)]
    pub(crate) fn raw(&self) -> [u64; 8] {
        let (x, y) = (self.x.raw(), self.y.raw());
        [x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]]
    }

    /// Inverse of `raw`; all zeros gives (0, 0), which is not a curve point
    /// and which callers must discard.
    #[inline(always)]
    pub(crate) fn from_raw(l: [u64; 8]) -> Affine {
        Affine { x: Fe::from_raw([l[0], l[1], l[2], l[3]]), y: Fe::from_raw([l[4], l[5], l[6], l[7]]) }
    }

    /// −self where `mask` is all ones, self where it is zero; no branch.
    #[inline(always)]
    pub(crate) fn negate_if(&self, mask: u64) -> Affine {
        Affine { x: self.x, y: Fe::select(&self.y, &self.y.neg(), mask) }
    }

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

/// A point in homogeneous projective coordinates (x = X/Z, y = Y/Z), the
/// identity being (0 : 1 : 0). Used only for secret scalars: its addition is
/// complete (no exceptional inputs, so no branches) and every operation
/// takes the same time whatever the point.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Projective {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Projective {
    pub(crate) fn identity() -> Projective {
        Projective { x: Fe::ZERO, y: Fe::one(), z: Fe::ZERO }
    }

    /// self + q for a finite affine q on the curve, any self including the
    /// identity, q and −q: the complete mixed addition for a = −3 of
    /// Renes, Costello and Batina, "Complete addition formulas for prime
    /// order elliptic curves" (EUROCRYPT 2016), algorithm 5, 11M + 2 by b,
    /// transcribed as in RustCrypto's primeorder.
    pub(crate) fn add_affine_complete(&self, q: &Affine) -> Projective {
        let b = Fe::from_raw(B_MONTGOMERY);
        let (x1, y1, z1) = (&self.x, &self.y, &self.z);
        let xx = x1.mul(&q.x);
        let yy = y1.mul(&q.y);
        let xy_pairs = x1.add(y1).mul(&q.x.add(&q.y)).sub(&xx.add(&yy));
        let yz_pairs = q.y.mul(z1).add(y1);
        let xz_pairs = q.x.mul(z1).add(x1);
        let bz_part = xz_pairs.sub(&b.mul(z1));
        let bz3_part = bz_part.double().add(&bz_part);
        let yy_m_bzz3 = yy.sub(&bz3_part);
        let yy_p_bzz3 = yy.add(&bz3_part);
        let z3 = z1.double().add(z1);
        let bxz_part = b.mul(&xz_pairs).sub(&z3.add(&xx));
        let bxz3_part = bxz_part.double().add(&bxz_part);
        let xx3_m_zz3 = xx.double().add(&xx).sub(&z3);
        Projective {
            x: yy_p_bzz3.mul(&xy_pairs).sub(&yz_pairs.mul(&bxz3_part)),
            y: yy_p_bzz3.mul(&yy_m_bzz3).add(&xx3_m_zz3.mul(&bxz3_part)),
            z: yy_m_bzz3.mul(&yz_pairs).add(&xy_pairs.mul(&xx3_m_zz3)),
        }
    }

    /// `b` where `mask` is all ones, `a` where it is zero; no branch.
    #[inline(always)]
    pub(crate) fn select(a: &Projective, b: &Projective, mask: u64) -> Projective {
        Projective { x: Fe::select(&a.x, &b.x, mask), y: Fe::select(&a.y, &b.y, mask), z: Fe::select(&a.z, &b.z, mask) }
    }

    /// The affine point, by one constant-time inversion; the identity comes
    /// out as (0, 0), which is not on the curve.
    pub(crate) fn to_affine(self) -> Affine {
        let z_inv = self.z.invert();
        Affine { x: self.x.mul(&z_inv), y: self.y.mul(&z_inv) }
    }

    /// The affine x-coordinate only (0 for the identity).
    pub(crate) fn affine_x(self) -> Fe {
        self.x.mul(&self.z.invert())
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
    fn b_in_montgomery_form() {
        assert_eq!(Fe::from_raw(B_MONTGOMERY), Fe::from_limbs_mod_p(B));
    }

    #[test]
    fn complete_addition_matches_reference_including_the_exceptional_cases() {
        let g = Affine::generator();
        let ref_g = ProjectivePoint::generator();
        let mut acc = Projective::identity();
        let mut r = ProjectivePoint::identity();
        for i in 1..=40u64 {
            acc = acc.add_affine_complete(&g);
            r += ref_g;
            assert_eq!(acc.to_affine().to_sec1_uncompressed().to_vec(), reference_sec1(r), "{i}·G");
            let x = acc.affine_x();
            assert_eq!(x, acc.to_affine().x);
        }
        // P + P (doubling), P + (−P) (identity), O + P.
        let two_g = Projective::identity().add_affine_complete(&g).add_affine_complete(&g);
        assert_eq!(two_g.to_affine().to_sec1_uncompressed().to_vec(), reference_sec1(ref_g.double()));
        let zero = Projective::identity().add_affine_complete(&g).add_affine_complete(&g.neg());
        assert!(zero.z.is_zero() && !zero.y.is_zero());
        assert_eq!(zero.to_affine(), Affine { x: Fe::ZERO, y: Fe::ZERO });
        let back = zero.add_affine_complete(&g);
        assert_eq!(back.to_affine(), g);
        assert_eq!(g.negate_if(u64::MAX), g.neg());
        assert_eq!(g.negate_if(0), g);
        assert_eq!(Affine::from_raw(g.raw()), g);
        let (a, b) = (Projective::identity(), Projective::identity().add_affine_complete(&g));
        assert_eq!(Projective::select(&a, &b, u64::MAX).to_affine(), g);
        assert!(Projective::select(&a, &b, 0).z.is_zero());
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
