-- Example Lmod module for a vistune installed with
--   cmake --install build --prefix /opt/vistune/0.1.0
-- Copy to <modulepath>/vistune/0.1.0.lua and adjust `root` and the
-- dependencies to the site's module names. (Spack can generate an equivalent
-- file: `spack module lmod refresh vistune`.)
help([[
vistune: visual instruction tuning of multimodal models on HPC clusters.
  vistune --help                      commands
  vistune submit train run.yaml       submit a training job to Slurm
  $VISTUNE_ROOT/share/vistune/slurm   batch-script templates
  $VISTUNE_ROOT/share/doc/vistune     documentation (cluster.md)
]])
whatis("Name: vistune")
whatis("Version: 0.1.0")
whatis("Description: visual instruction tuning of multimodal models (MPI, Slurm, CUDA)")

local root = "/opt/vistune/0.1.0"

-- vistune is linked against these at build time; load the same ones at run time.
depends_on("openmpi")
if isloaded("cuda") or (os.getenv("VISTUNE_WITH_CUDA") == "1") then
  depends_on("cuda")
end

setenv("VISTUNE_ROOT", root)
prepend_path("PATH", pathJoin(root, "bin"))
