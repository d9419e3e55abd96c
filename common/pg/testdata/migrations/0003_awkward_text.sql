-- Text that would trip a naive embedder: )sql" and )sql1" end raw strings, ${x} and ; mean
-- things to CMake, \ escapes things in C++, [[ ]] quotes things in CMake.
CREATE TABLE notes (body text NOT NULL);
INSERT INTO notes (body) VALUES ('a )sql" b )sql1" c ${x}; d \n [[e]] f ''g'' é');
