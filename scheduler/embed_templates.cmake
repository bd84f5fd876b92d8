# cmake -DDIR=<deploy/slurm> -DOUT=<file.c> -P embed_templates.cmake
# Builds the Slurm templates into the binary so `vistune submit` works from
# any directory; the installed copies in share/vistune/slurm are for reading
# and for site-specific variants (slurm.template).
set(src "/* Generated from the deploy/slurm templates by scheduler/embed_templates.cmake. */\n#include \"scheduler/slurm_job.h\"\n\n")
foreach(kind train eval nightly)
  file(READ ${DIR}/${kind}.sbatch hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND src "static const char tmpl_${kind}[] = {${bytes}0x00};\n")
endforeach()
string(APPEND src "\nconst char *vt_slurm_builtin_template(vt_slurm_kind kind) {\n"
  "    switch (kind) {\n"
  "    case VT_SLURM_TRAIN: return tmpl_train;\n"
  "    case VT_SLURM_EVAL: return tmpl_eval;\n"
  "    case VT_SLURM_NIGHTLY: return tmpl_nightly;\n"
  "    }\n    return NULL;\n}\n")
file(WRITE ${OUT}.tmp "${src}")
configure_file(${OUT}.tmp ${OUT} COPYONLY)
