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

# When a version is released, its upgrade script joins RELEASED and its
# sources leave src/updates/, so later changes to src/sql cannot rewrite it.
#
# An upgrade script: src/updates/FROM--TO.sql, then the parts in
# src/updates/FROM--TO/ in name order (one per change, so parallel work
# does not collide), then the finalize step.  A part NN_x.sql is copied,
# each line "-- @restate OBJECT..." in it replaced by the object's current
# definition from src/sql (tools/upgrade-part); a part NN_x.objects lists
# such objects alone.  No definition is copied by hand.
.SECONDEXPANSION:
popsell--%.sql: src/updates/%.sql $$(sort $$(wildcard src/updates/$$*/*)) $(SQL_FINALIZE) $(SQL_SOURCES) tools/upgrade-part
	@if ! command -v python3 >/dev/null 2>&1; then \
	  echo "python3 not found: keeping the committed $@ (install python3 to rebuild it)" >&2; \
	  touch $@; exit 0; fi; \
	{ cat src/updates/$*.sql; \
	  for part in $(sort $(wildcard src/updates/$*/*)); do \
	    echo; echo "-- $$part"; \
	    case $$part in \
	      *.objects) tools/upgrade-part $$(grep -v '^#' $$part) || exit 1 ;; \
	      *) tools/upgrade-part --expand $$part || exit 1 ;; \
	    esac; \
	  done; \
	  echo; cat $(SQL_FINALIZE); } > $@.tmp || { rm -f $@.tmp; exit 1; }; \
	mv $@.tmp $@

# doc/reference.md: every public function's signature, grants and
# COMMENT, read from the catalog of a database where popsell is installed
# (PGDATABASE etc. say which).
.PHONY: reference
reference:
	psql -X -q -v ON_ERROR_STOP=1 -f tools/reference.sql > doc/reference.md

$(OBJS): $(wildcard src/*.h)
