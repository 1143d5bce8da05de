// Included first by every header of the core. The core is plain C++17 and must
// never see PostgreSQL's headers: their macros (elog, palloc, Assert, ...) and
// setjmp-based error handling do not mix with C++ objects. The glue talks to
// the core only through capi.h.
#pragma once
#ifdef POSTGRES_H
#error "src/core headers must not be included together with postgres.h; use src/core/capi.h"
#endif
#ifdef POSTGRES_FE_H
#error "src/core headers must not be included together with postgres_fe.h; use src/core/capi.h"
#endif
#ifndef __cplusplus
#error "src/core headers are C++; C code uses src/core/capi.h"
#endif
