pub mod cron;
pub mod dev;
pub mod new;
pub mod run;
pub mod validate;
