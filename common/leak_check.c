/* See leak_check.h. GCC and clang define __SANITIZE_ADDRESS__ under -fsanitize=address. */
#include "common/leak_check.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
void vt_leak_check_pause(void) { __lsan_disable(); }
void vt_leak_check_resume(void) { __lsan_enable(); }
void vt_leak_check_before_mpi_finalize(void) { __lsan_do_leak_check(); }
#else
void vt_leak_check_pause(void) {}
void vt_leak_check_resume(void) {}
void vt_leak_check_before_mpi_finalize(void) {}
#endif
