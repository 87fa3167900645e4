//! A vector whose freed places are reused, addressed by `u32` positions. The tail table's IPv6
//! keys and the TIME_WAIT detector's destinations live in one: hash tables of positions point
//! into it, so no key is stored twice.

use std::ops::{Index, IndexMut};

/// Items at `u32` positions; a freed position is given to the next item.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    items: Vec<T>,
    free: Vec<u32>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            items: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// Stores `item` at a freed position, else at a new one; returns the position. Callers
    /// hold fewer than 2^32 items.
    pub(crate) fn insert(&mut self, item: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = item;
                i
            }
            None => {
                self.items.push(item);
                (self.items.len() - 1) as u32
            }
        }
    }

    /// Gives position `i` back; its item stays until the position is reused.
    pub(crate) fn free(&mut self, i: u32) {
        self.free.push(i);
    }
}

impl<T> Index<u32> for Slots<T> {
    type Output = T;
    fn index(&self, i: u32) -> &T {
        &self.items[i as usize]
    }
}

impl<T> IndexMut<u32> for Slots<T> {
    fn index_mut(&mut self, i: u32) -> &mut T {
        &mut self.items[i as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn freed_positions_are_reused_last_freed_first() {
        let mut s = Slots::default();
        assert_eq!((s.insert('a'), s.insert('b'), s.insert('c')), (0, 1, 2));
        s.free(0);
        s.free(2);
        assert_eq!(s.insert('d'), 2);
        assert_eq!(s.insert('e'), 0);
        assert_eq!(s.insert('f'), 3);
        assert_eq!((s[0], s[1], s[2], s[3]), ('e', 'b', 'd', 'f'));
    }
}
