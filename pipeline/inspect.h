/* `vistune inspect DB [--index I] [--dump-image FILE]`: a store's manifest
 * summary and one decoded record. */
#ifndef VT_PIPELINE_INSPECT_H
#define VT_PIPELINE_INSPECT_H

int vt_cmd_inspect(int argc, char **argv);

#endif
