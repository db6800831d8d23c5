"""``dp-gan``: the public module :mod:`.dp_gan`; its networks (:mod:`.networks`) and the
conditional vector (:mod:`.conditional`)."""
