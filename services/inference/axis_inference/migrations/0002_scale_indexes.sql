-- A facility's year of data (issue 18; `make bench-scale`, docs/scale.md): `axis_cli audit --image-uri` looks
-- an image up by its URI; without this index it reads every image.
CREATE INDEX IF NOT EXISTS images_uri ON images (image_uri);
