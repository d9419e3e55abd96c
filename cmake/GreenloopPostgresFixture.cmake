# The PostgreSQL every `pg` test runs against: one throwaway cluster per ctest run.
#
# tests/support defines the CTest fixture `pg`: pg.start (`deploy/local/pg.sh start --fresh`) and
# pg.stop (`pg.sh destroy`), both in ${GREENLOOP_PG_FIXTURE_DIR}. A test that needs PostgreSQL
# carries ${GREENLOOP_PG_TEST_PROPERTIES}; ctest then starts the cluster before it and removes it
# after, and the test finds the url through GREENLOOP_TEST_PG_URL_FILE (greenloop::test_pg's
# TestPgUrl()). Easiest is greenloop_pg_test(), which does all of that:
#
#   greenloop_pg_test(NAME feedback_storage_test SOURCES storage_test.cc
#                     LIBS greenloop::feedback_storage)
#
# Values live in the cache so that every directory sees them whichever one includes this first.
include_guard(GLOBAL)

set(GREENLOOP_PG_FIXTURE_DIR "${CMAKE_BINARY_DIR}/test-pg" CACHE INTERNAL
    "Data directory of the PostgreSQL the pg tests use")
set(GREENLOOP_PG_SCRIPT "${PROJECT_SOURCE_DIR}/deploy/local/pg.sh" CACHE INTERNAL
    "Script that starts and stops a local PostgreSQL")
set(GREENLOOP_PG_TEST_PROPERTIES
    FIXTURES_REQUIRED pg
    ENVIRONMENT "GREENLOOP_TEST_PG_URL_FILE=${GREENLOOP_PG_FIXTURE_DIR}/url"
    CACHE INTERNAL "CTest properties of a test that needs the pg fixture")

# greenloop_pg_test(NAME <name> SOURCES ... [LIBS ...] [PROPERTIES ...])
#
# greenloop_test() with LABELS pg, the fixture properties, and greenloop::test_pg linked.
function(greenloop_pg_test)
  cmake_parse_arguments(arg "" "NAME" "SOURCES;LIBS;PROPERTIES" ${ARGN})
  greenloop_test(NAME ${arg_NAME} SOURCES ${arg_SOURCES}
                 LIBS ${arg_LIBS} greenloop::test_pg
                 LABELS pg
                 PROPERTIES ${GREENLOOP_PG_TEST_PROPERTIES} ${arg_PROPERTIES})
endfunction()
