# Spack recipe for vistune. Use it from a local repository:
#   spack repo create ~/spack-vistune vistune   (once), then copy this file to
#   ~/spack-vistune/packages/vistune/package.py and `spack repo add ~/spack-vistune`
#   spack install vistune                     # CPU (OpenBLAS or the site's BLAS)
#   spack install vistune +cuda cuda_arch=90  # H100/H200 (80 for A100)
# MPI, BLAS and CUDA are the site's: `spack install vistune ^openmpi@4.1` or
# mark the site's builds as externals in packages.yaml.
from spack.package import *


class Vistune(CMakePackage, CudaPackage):
    """Visual instruction tuning of multimodal (image+text) models on HPC
    clusters: MPI data-parallel training with ZeroMQ data loaders over LMDB
    shards, robustness evaluation under distribution shifts, Slurm tooling."""

    homepage = "https://github.com/vistune/vistune"
    git = "https://github.com/vistune/vistune.git"

    maintainers("vistune")
    license("MIT")

    version("main", branch="main")

    variant("sanitize", default=False, description="Build with ASan and UBSan (debugging)")

    depends_on("c", type="build")
    depends_on("cmake@3.18:", type="build")
    depends_on("pkgconfig", type="build")
    depends_on("protobuf-c", type=("build", "link"))  # protoc-c runs at build time

    depends_on("mpi")
    depends_on("blas")
    depends_on("libzmq")
    depends_on("lmdb")
    depends_on("libwebp")
    depends_on("libyaml")
    depends_on("cjson")
    depends_on("libpng")
    depends_on("libjpeg-turbo")
    depends_on("cmocka", type="test")

    # CUDA 13 dropped sm_60/sm_70; vistune's kernels target Ampere and newer.
    conflicts("cuda_arch=none", when="+cuda", msg="vistune +cuda needs cuda_arch, e.g. cuda_arch=90")

    def cmake_args(self):
        args = [
            self.define_from_variant("VT_SANITIZE", "sanitize"),
            self.define("BUILD_TESTING", self.run_tests),
            self.define("VT_CUDA", "ON" if self.spec.satisfies("+cuda") else "OFF"),
        ]
        if self.spec.satisfies("+cuda"):
            archs = self.spec.variants["cuda_arch"].value
            args.append(self.define("CMAKE_CUDA_ARCHITECTURES", ";".join(archs)))
        return args

    def setup_run_environment(self, env):
        # The Slurm templates are built into `vistune submit`; the copies in
        # share/vistune/slurm are the starting point for site variants.
        env.set("VISTUNE_ROOT", self.prefix)
