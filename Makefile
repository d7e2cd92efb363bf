# popsell: PGXS build.
#
# The install script of the current version is built from src/sql/*.sql
# (one file per concept, concatenated in name order); each upgrade script
# from src/updates/FROM--TO.sql, src/updates/FROM--TO/*.sql and
# src/sql/99_finalize.sql.  Both
# are committed, so a plain PGXS install needs no generator; sql/801_upgrade
# and test/scripts/003_generated_files.sh fail when they drift.

EXTENSION   = popsell
EXTVERSION  = 2.0
MODULE_big  = popsell
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

SQL_SOURCES  = $(sort $(wildcard src/sql/*.sql))
SQL_FINALIZE = src/sql/99_finalize.sql
# Released scripts, never edited: 1.0 and 1.0--1.1.
RELEASED     = popsell--1.0.sql popsell--1.0--1.1.sql
UPDATES      = $(patsubst src/updates/%.sql,popsell--%.sql,$(sort $(wildcard src/updates/*.sql)))
GENERATED    = popsell--$(EXTVERSION).sql $(UPDATES)
DATA         = $(RELEASED) $(GENERATED)

REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=pgcrypto
ISOLATION    = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --load-extension=pgcrypto

PG_CPPFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK  = -lcrypto -licuuc

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

all: $(GENERATED)

.PHONY: generated
generated: $(GENERATED)

popsell--$(EXTVERSION).sql: $(SQL_SOURCES)
	cat $(SQL_SOURCES) > $@

# An upgrade script: src/updates/FROM--TO.sql, then the parts in
# src/updates/FROM--TO/ in name order (one per change, so parallel work
# does not collide), then the finalize step.
.SECONDEXPANSION:
popsell--%.sql: src/updates/%.sql $$(sort $$(wildcard src/updates/$$*/*.sql)) $(SQL_FINALIZE)
	cat $^ > $@

# doc/reference.md: every public function's signature, grants and
# COMMENT, read from the catalog of a database where popsell is installed
# (PGDATABASE etc. say which).
.PHONY: reference
reference:
	psql -X -q -v ON_ERROR_STOP=1 -f tools/reference.sql > doc/reference.md

$(OBJS): $(wildcard src/*.h)
