/* A procedural test scene for the shift catalog (contact sheets, tests):
 * smooth sky, textured grass, a house and a sign, deterministic in seed. */
#ifndef VT_PIPELINE_SHIFT_SCENE_H
#define VT_PIPELINE_SHIFT_SCENE_H

#include <stdint.h>

/* Fills rgb (w*h*3 bytes, RGB interleaved) with the scene; any w, h >= 1. */
void vt_shift_scene(uint8_t *rgb, int w, int h, uint64_t seed);

#endif
